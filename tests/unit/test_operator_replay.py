"""The replay loop, its positions, and the operator command lines, without a broker."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from kafka.structs import TopicPartition

from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.consumer import Delivery
from kafka_bridge.operator import check, cli
from kafka_bridge.operator.replay import Positions, Replay
from kafka_bridge.operator.selection import Notification, Selection
from kafka_bridge.operator.window import OffsetRange, Window

A, B = TopicPartition("n.info", 0), TopicPartition("n.error", 0)


def record(tp: TopicPartition, offset: int, event_type: str = "x.y") -> Delivery:
    value = envelope.encode({}, {"event_type": event_type, "message_id": f"{tp.topic}-{offset}",
                                 "payload": {"offset": offset}})
    return Delivery(tp, offset, None, value, (), 1000 + offset)


class FakeReader:
    """Partitions of records; fetch hands out a few at a time from unpaused partitions."""

    def __init__(self, records: dict[TopicPartition, list[Delivery]], chunk: int = 3,
                 ends: dict[TopicPartition, int] | None = None) -> None:
        self.records = records
        self.ends = ends or {}
        self.chunk = chunk
        self.cursor: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()

    def seek(self, positions):
        self.cursor = dict(positions)

    def fetch(self, timeout: float, max_records: int) -> list[Delivery]:
        out: list[Delivery] = []
        for tp, offset in self.cursor.items():
            if tp in self.paused:
                continue
            room = min(self.chunk, max_records - len(out))
            taken = [r for r in self.records[tp] if r.offset >= offset][:room]
            if taken:
                self.cursor[tp] = taken[-1].offset + 1
            elif self.ends.get(tp, offset) > offset:
                self.cursor[tp] = self.ends[tp]  # past a gap, as Kafka moves the position
            out += taken
        return out

    def position(self, tp: TopicPartition) -> int:
        return self.cursor[tp]

    def done_with(self, tp: TopicPartition) -> None:
        self.paused.add(tp)


class Collecting:
    """A destination confirming everything until it is told to fail."""

    verb = "delivered"

    def __init__(self, confirm_batches: int | None = None) -> None:
        self.delivered: list[tuple[str, int]] = []
        self.confirm_batches = confirm_batches
        self.batches = 0
        self.on_batch = None

    def deliver(self, notifications: Sequence[Notification]) -> list[bool]:
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.batches)
        if self.confirm_batches is not None and self.batches > self.confirm_batches:
            return [False] * len(notifications)
        self.delivered += [(n.delivery.partition.topic, n.delivery.offset) for n in notifications]
        return [True] * len(notifications)

    def stop(self) -> None:
        pass


def history() -> dict[TopicPartition, list[Delivery]]:
    return {A: [record(A, o, "compute.create" if o % 2 else "compute.delete")
                for o in range(20)],
            B: [record(B, o) for o in range(10)]}


def test_replay_reads_each_range_once_and_stops_at_its_end() -> None:
    destination = Collecting()
    positions = Positions(Window(1000), {A: OffsetRange(5, 15), B: OffsetRange(0, 4)})
    result = Replay(FakeReader(history()), positions, Selection(), destination,
                    batch_size=4).run()
    assert result.complete and result.positions.remaining() == 0
    assert sorted(destination.delivered) == sorted(
        [("n.info", o) for o in range(5, 15)] + [("n.error", o) for o in range(4)])
    assert (result.counts["n.info"].read, result.counts["n.error"].read) == (10, 4)


def test_filtered_and_out_of_window_records_are_counted_not_delivered() -> None:
    destination = Collecting()
    positions = Positions(Window(1000, 1012), {A: OffsetRange(0, 20)})
    result = Replay(FakeReader(history()), positions,
                    Selection(Window(1000, 1012), event_types=["compute.create"]),
                    destination).run()
    counts = result.counts["n.info"]
    assert (counts.read, counts.matched, counts.confirmed) == (20, 6, 6)
    assert counts.skipped == {"outside_window": 8, "filtered": 6, "undecodable": 0}
    assert destination.delivered == [("n.info", o) for o in (1, 3, 5, 7, 9, 11)]
    table = result.summary("delivered").splitlines()
    assert table[0].split() == ["topic", "read", "matched", "delivered", "outside_window",
                                "filtered", "undecodable"]
    assert table[-1].split() == ["total", "20", "6", "6", "8", "6", "0"]


def test_an_interrupted_replay_resumes_where_confirmation_stopped() -> None:
    destination = Collecting(confirm_batches=2)
    positions = Positions(Window(1000), {A: OffsetRange(0, 20), B: OffsetRange(0, 10)})
    replay = Replay(FakeReader(history()), positions, Selection(), destination, batch_size=6)
    destination.on_batch = lambda n: replay.stop() if n == 3 else None
    first = replay.run()
    assert not first.complete
    done_first = set(destination.delivered)
    assert 0 < len(done_first) < 30
    # positions stop before the first record not confirmed, per partition
    for tp, rest in first.positions.ranges.items():
        assert (tp.topic, rest.start) not in done_first
        assert all((tp.topic, o) in done_first for o in range(positions.ranges[tp].start,
                                                              rest.start))
    again = Collecting()
    second = Replay(FakeReader(history()), first.positions, Selection(), again).run()
    assert second.complete
    everything = {("n.info", o) for o in range(20)} | {("n.error", o) for o in range(10)}
    assert done_first | set(again.delivered) == everything
    assert not done_first & set(again.delivered)


def test_a_range_ending_in_a_gap_completes() -> None:
    records = {A: [record(A, o) for o in (0, 1, 2)]}  # offsets 3-5: compacted away
    result = Replay(FakeReader(records, ends={A: 6}), Positions(Window(0), {A: OffsetRange(0, 6)}),
                    Selection(), Collecting()).run()
    assert result.complete


def test_positions_survive_a_file(tmp_path: Path) -> None:
    positions = Positions(Window(1000, 2000), {A: OffsetRange(5, 15), B: OffsetRange(0, 4)})
    path = tmp_path / "p.json"
    positions.save(path)
    assert Positions.load(path) == positions
    assert not (tmp_path / "p.json.partial").exists()


@pytest.mark.parametrize("content, complaint", [
    ("{}", "not a replay position file"),
    ("[1", "not a usable replay position file"),
])
def test_a_bad_position_file_says_what_is_wrong(tmp_path: Path, content: str,
                                                complaint: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=complaint):
        Positions.load(path)
    with pytest.raises(ValueError, match="cannot read"):
        Positions.load(tmp_path / "missing.json")


# command lines -----------------------------------------------------------------------


def test_relative_times_may_follow_their_option_as_separate_arguments() -> None:
    args = cli.build_parser().parse_args(cli.joined_relative_times(
        ["replay", "--from", "-2h", "--until", "-1h30m", "--topic", "t"]))
    assert (args.start, args.until, args.topic) == ("-2h", "-1h30m", ["t"])


def test_the_resume_command_leaves_out_the_window_and_topics() -> None:
    argv = ["replay", "--config-file", "f.conf", "--from", "-2h", "--until=-1h", "--topic",
            "a", "--topic=b", "--event-type", "compute.*", "--resume", "old.json"]
    assert cli._without_window(argv) == ["replay", "--config-file", "f.conf",
                                         "--event-type", "compute.*"]


@pytest.mark.parametrize("command", ["replay", "tail", "check"])
def test_every_subcommand_documents_its_options(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    expected = {"replay": ["--from", "--until", "--topic", "--event-type", "--publisher-id",
                           "--output", "--output-file", "--dry-run", "--resume",
                           "--max-rate", "TIME is", "exit 130"],
                "tail": ["--topic", "--from", "--count", "--output", "--event-type"],
                "check": ["--create-topics", "exit codes", "7  a reverse topic"]}[command]
    for option in ["--config-file", *expected]:
        assert option in text, option


def write_conf(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "kafka-bridge.conf"
    path.write_text(textwrap.dedent("""\
        [DEFAULT]
        transport_url = rabbit://u:p@127.0.0.1:1/
        [kafka_bridge]
        kafka_url = kafka-notify://127.0.0.1:1/
        mode = reverse
        [reverse]
        kafka_topics = notifications.info
        """) + textwrap.dedent(extra))
    return path


@pytest.mark.parametrize("arguments, complaint", [
    (["--dry-run"], "--from TIME is required"),
    (["--from", "-1h", "--resume", "x.json"], "leave out --from"),
    (["--from", "yesterday"], "is not a time"),
    (["--from", "-1h", "--until", "-2h"], "--until must be later than --from"),
    (["--from", "-1h", "--output-file", "x"], "--output-file needs --output jsonl"),
])
def test_replay_arguments_that_cannot_work_exit_2_before_connecting(
        tmp_path: Path, capsys, arguments: list[str], complaint: str) -> None:
    conf = write_conf(tmp_path)
    assert cli.main(["replay", "--config-file", str(conf), *arguments]) == cli.EXIT_USAGE
    assert complaint in capsys.readouterr().err


def test_check_reports_options_in_the_wrong_section_and_misspelled_ones(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, """\
        [kafka_bridge]
        group = my-group
        [reverse]
        kafka_topic = x
        [forward]
        start_from = earliest
        [some_other_service]
        anything = goes
        """)
    findings = check.misplaced_options(cli._configuration(
        cli.build_parser().parse_args(["check", "--config-file", str(conf)])))
    details = {f.check: f.detail for f in findings}
    assert set(details) == {"option [kafka_bridge] group", "option [reverse] kafka_topic",
                            "option [forward] start_from"}
    assert "move it to [reverse]" in details["option [kafka_bridge] group"]
    assert "did you mean kafka_topics?" in details["option [reverse] kafka_topic"]
    assert "move it to [reverse]" in details["option [forward] start_from"]
    assert check.exit_code(findings) == check.CONFIGURATION


def test_check_exits_with_the_first_problem_found() -> None:
    findings = [check.Finding("a", True, ""), check.Finding("b", None, "a note"),
                check.Finding("c", False, "", check.TOPIC_MISSING),
                check.Finding("d", False, "", check.KAFKA_REFUSED)]
    assert check.exit_code(findings) == check.TOPIC_MISSING
    assert check.exit_code(findings[:2]) == check.OK
    table = check.render(findings)
    assert "b      NOTE    a note" in table
    assert table.endswith(f"exit 7: {check.EXIT_CODES[7]}")
