"""Paths into notifications (record keys, topic template fields) on nova's real shapes."""

from __future__ import annotations

import pytest

from kafka_bridge.kafka import envelope
from kafka_bridge.payload_path import PayloadPath
from kafka_bridge.pump.routes.topic_template import TopicTemplate
from tests.nova_samples import nova_sample

INSTANCE = "178b0921-8f85-4257-88b6-2e743b5a975c"
PROJECT = "6f70656e737461636b20342065766572"

#: nova's legacy (unversioned) compute.instance.* shape: flat payload keys
LEGACY = {"event_type": "compute.instance.create.end", "publisher_id": "compute.host1",
          "priority": "INFO", "payload": {"instance_id": INSTANCE, "tenant_id": PROJECT,
                                          "state": "active", "image_meta": {"os.type": "x"}}}

FIELDS = {"exchange": "nova", "topic": "versioned_notifications", "priority": "info",
          "event_type": "instance.create.end", "publisher_id": "nova-compute:compute"}


@pytest.mark.parametrize("sample", ["instance-create-end.json", "instance-delete-start.json"])
@pytest.mark.parametrize("path", ["/payload/nova_object.data/uuid",
                                  "payload.nova_object.data.uuid"])
def test_nova_versioned_notification_is_keyed_by_instance_uuid(sample: str, path: str) -> None:
    assert envelope.record_key(nova_sample(sample), PayloadPath(path)) == INSTANCE.encode()


def test_legacy_shape_is_keyed_by_the_dotted_path_as_before() -> None:
    assert envelope.record_key(LEGACY, PayloadPath("payload.instance_id")) == INSTANCE.encode()
    assert envelope.record_key(LEGACY, PayloadPath("/payload/instance_id")) == INSTANCE.encode()


def test_dotted_path_prefers_plain_keys_and_falls_back_to_keys_with_dots() -> None:
    message = {"a": {"b": {"c": "plain"}}, "a.b": {"c": "dotted"}}
    assert PayloadPath("a.b.c").find(message) == "plain"  # today's meaning first
    assert PayloadPath("a.b.c").find({"a.b": {"c": "dotted"}}) == "dotted"
    assert PayloadPath("/a.b/c").find(message) == "dotted"
    assert PayloadPath("payload.image_meta.os.type").find(LEGACY) == "x"


def test_json_pointer_escapes_and_list_indices() -> None:
    message = {"payload": {"a/b": 1, "m~n": 2, "list": ["zero", "one"]}}
    assert PayloadPath("/payload/a~1b").find(message) == 1
    assert PayloadPath("/payload/m~0n").find(message) == 2
    assert PayloadPath("/payload/list/1").find(message) == "one"
    assert PayloadPath("/payload/list/2").find(message) is None
    assert PayloadPath("/payload/list/x").find(message) is None
    ip = nova_sample("instance-delete-start.json")
    assert PayloadPath("/payload/nova_object.data/ip_addresses/0/nova_object.data/address"
                       ).find(ip) == "192.168.1.3"


@pytest.mark.parametrize("path, reason", [
    ("", "empty"), ("payload..uuid", "empty part"), ("/payload/a~2", "~"),
])
def test_malformed_paths_are_refused_naming_the_problem(path: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        PayloadPath(path)


def test_topic_per_project_on_nova_versioned_and_legacy_shapes() -> None:
    template = TopicTemplate("nova.{/payload/nova_object.data/tenant_id}.{priority}",
                             "nova.unassigned.{priority}")
    assert template.topic(FIELDS, nova_sample("instance-create-end.json")) == (
        f"nova.{PROJECT}.info")
    legacy = TopicTemplate("nova.{payload.tenant_id}", "nova.unassigned")
    assert legacy.topic(FIELDS, LEGACY) == f"nova.{PROJECT}"


def test_a_notification_without_the_field_goes_to_the_fallback() -> None:
    template = TopicTemplate("p.{/payload/nova_object.data/tenant_id}", "{topic}.{priority}")
    # nova's flavor notifications have no project
    assert template.topic(FIELDS, nova_sample("flavor-create.json")) == (
        "versioned_notifications.info")
    # a whole object is no topic name either
    whole = TopicTemplate("p.{/payload/nova_object.data/flavor}", "fallback")
    assert whole.topic(FIELDS, nova_sample("instance-create-end.json")) == "fallback"
    assert template.topic(FIELDS, {"payload": {"nova_object.data": {"tenant_id": ""}}}) == (
        "versioned_notifications.info")


def test_values_are_made_legal_topic_names() -> None:
    template = TopicTemplate("{publisher_id}.{payload.project}", "fallback")
    message = {"payload": {"project": "Ünï côde/../x y"}}
    assert template.topic(FIELDS, message) == "nova-compute_compute._n__c_de_.._x_y"
    too_long = {"payload": {"project": "p" * 300}}
    assert template.topic(FIELDS, too_long) == "fallback"
    numbers = {"payload": {"project": 42}}
    assert template.topic(FIELDS, numbers) == "nova-compute_compute.42"


@pytest.mark.parametrize("template, fallback, named", [
    ("{topic}/{priority}", "{topic}", "'/'"),
    ("{payload}", "{topic}", "{payload}"),
    ("{/payload/x:y}", "{topic}", "':'"),
    ("{topic}", "{payload.tenant_id}", "topic_fallback"),
    ("{topic}", "{/payload/x}", "topic_fallback"),
])
def test_bad_templates_are_refused_at_start(template: str, fallback: str, named: str) -> None:
    with pytest.raises(ValueError) as info:
        TopicTemplate(template, fallback)
    assert named in str(info.value)
