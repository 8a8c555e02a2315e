"""Nova's real notifications through the daemon: keyed per instance, routed per project."""

from __future__ import annotations

import collections
import json

import oslo_messaging
from oslo_context.context import RequestContext

from kafka_bridge_devenv.traffic import BridgeProcess, KafkaCollector, wait_until
from tests.nova_samples import nova_sample

PROJECTS = ("6f70656e737461636b20342065766572", "a3c2d2f1e0b94c6e9d1b7a2f00000001")
INSTANCES_PER_PROJECT = 3
EVENTS = ("instance-create-end.json", "instance-delete-start.json")


def _versioned(sample: str, project: str, instance: str) -> dict:
    """A nova sample notification for another project and instance."""
    notification = nova_sample(sample)
    data = notification["payload"]["nova_object.data"]
    data.update(tenant_id=project, uuid=instance)
    return notification


def test_nova_versioned_notifications_are_keyed_by_instance_and_routed_per_project(
        tmp_path, brokers, local, bridges, unique) -> None:
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "forward"},
        "forward": {"topics": unique, "pool": f"{unique}-bridge",
                    "topic_template": f"{unique}.{{/payload/nova_object.data/tenant_id}}"
                                      f".{{priority}}",
                    "topic_fallback": f"{unique}.unassigned.{{priority}}"},
        "oslo_messaging_kafka_notify": {
            "record_key_field": "/payload/nova_object.data/uuid"}})
    bridges.append(bridge)  # before start: stopped by the fixture even if it never got ready
    bridge.start()
    per_project = {p: KafkaCollector(brokers, f"{unique}.{p}.info") for p in PROJECTS}
    fallback = KafkaCollector(brokers, f"{unique}.unassigned.info")
    notifier = oslo_messaging.Notifier(local, publisher_id="nova-compute:compute",
                                       driver="messagingv2", topics=[unique])
    sent: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    try:
        # each instance's events in order, from one thread
        for n in range(INSTANCES_PER_PROJECT):
            for project in PROJECTS:
                instance = f"{project[:8]}-0000-4000-8000-{n:012d}"
                for sample in EVENTS:
                    body = _versioned(sample, project, instance)
                    notifier.info(RequestContext(request_id=f"req-{n}"), body["event_type"],
                                  body["payload"])
                    sent[project].append((instance, body["event_type"]))
        oslo_messaging.Notifier(local, publisher_id="nova-api:fake-mini",
                                driver="messagingv2", topics=[unique]).info(
            {}, "flavor.create", nova_sample("flavor-create.json")["payload"])
        for project, collector in per_project.items():
            wait_until(lambda: len(collector.records) >= len(sent[project]), 60,
                       f"project {project}'s notifications in its topic")
        wait_until(lambda: len(fallback.records) >= 1, 60,
                   "nova's flavor notification (it has no project) in the fallback topic")
        for project, collector in per_project.items():
            records = list(collector.records)
            by_partition = collections.defaultdict(list)
            for record in records:
                message = json.loads(json.loads(record.value)["oslo.message"])
                instance = message["payload"]["nova_object.data"]["uuid"]
                assert message["payload"]["nova_object.data"]["tenant_id"] == project
                assert record.key == instance.encode(), "not keyed by the instance uuid"
                by_partition[(record.partition, instance)].append(message["event_type"])
            # one instance, one partition, events in the order nova sent them
            per_instance = collections.defaultdict(list)
            for (partition, instance), events in by_partition.items():
                per_instance[instance].append(partition)
                assert events == [event for i, event in sent[project] if i == instance]
            assert all(len(partitions) == 1 for partitions in per_instance.values())
            assert len(per_instance) == INSTANCES_PER_PROJECT
        flavor = json.loads(json.loads(fallback.records[0].value)["oslo.message"])
        assert flavor["event_type"] == "flavor.create" and fallback.records[0].key is None
    finally:
        for collector in (*per_project.values(), fallback):
            collector.close()
