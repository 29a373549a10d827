"""rules.yaml: the admin's queues become a frozen Ruleset, or errors at file:line:column."""
import pytest

from rules.load import load_rules
from rules.model import Queue, Ruleset
from rules.source import ConfigError, ConfigProblem

GOOD = """
    version: 1
    queues:
      general: {address: support@example.com}
      billing: {address: Billing@Example.com}
      it-ops_2: {address: ops@example.com}
"""


def refused(path) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    return info.value.problems


def test_queues_load_in_file_order(write):
    ruleset = load_rules(write(GOOD, "rules.yaml"))
    assert ruleset.version == 1
    assert ruleset.queues == (Queue("general", "support@example.com"),
                              Queue("billing", "Billing@Example.com"),
                              Queue("it-ops_2", "ops@example.com"))
    assert ruleset.default_queue.name == "general"


def test_queue_for_address_ignores_case(write):
    ruleset = load_rules(write(GOOD, "rules.yaml"))
    assert ruleset.queue_for_address("billing@example.com").name == "billing"
    assert ruleset.queue_for_address("SUPPORT@EXAMPLE.COM").name == "general"
    assert ruleset.queue_for_address("stranger@example.com") is None
    assert ruleset.addresses == frozenset(
        {"support@example.com", "billing@example.com", "ops@example.com"})


def test_ruleset_is_frozen_and_needs_a_queue():
    ruleset = Ruleset(1, (Queue("general", "support@example.com"),))
    with pytest.raises(AttributeError):
        ruleset.version = 2
    assert ruleset == Ruleset(1, (Queue("general", "support@example.com"),))
    with pytest.raises(ValueError):
        Ruleset(1, ())


def test_missing_version_is_refused(write):
    path = write("""
        queues:
          general: {address: support@example.com}
    """, "rules.yaml")
    [problem] = refused(path)
    assert str(problem) == f"{path}:1:1: version: required key is missing"


def test_version_2_is_refused_at_its_line(write):
    path = write("""
        # rules for Acme
        version: 2
        queues:
          general: {address: support@example.com}
    """, "rules.yaml")
    [problem] = refused(path)
    assert (problem.line, problem.column, problem.key) == (2, 1, "version")
    assert "unsupported version 2" in problem.message


def test_version_must_be_a_number_not_text(write):
    [problem] = refused(write('version: "1"\nqueues: {general: {address: a@example.com}}\n',
                              "rules.yaml"))
    assert (problem.line, problem.key) == (1, "version")
    assert problem.message == "expected an integer, got string '1'"


@pytest.mark.parametrize("queues", ["queues: {}", "queues:"])
def test_no_queues_is_refused(write, queues):
    path = write(f"version: 1\n{queues}\n", "rules.yaml")
    [problem] = refused(path)
    assert (problem.line, problem.column, problem.key) == (2, 1, "queues")


def test_duplicate_queue_address_is_refused_at_the_second_one(write):
    path = write("""
        version: 1
        queues:
          general: {address: support@example.com}
          billing: {address: billing@example.com}
          urgent:
            address: Support@Example.com
    """, "rules.yaml")
    [problem] = refused(path)
    assert (problem.line, problem.column, problem.key) == (6, 5, "queues.urgent.address")
    assert "already belongs to queue 'general'" in problem.message


def test_duplicate_queue_name_is_refused(write):
    path = write("""
        version: 1
        queues:
          general: {address: support@example.com}
          general: {address: help@example.com}
    """, "rules.yaml")
    [problem] = refused(path)
    assert problem.line == 4
    assert 'duplicate key "general"' in problem.message


def test_unknown_top_level_key_is_refused(write):
    path = write("""
        version: 1
        queues:
          general: {address: support@example.com}
        teems:
          finance: {members: [alice@example.com]}
    """, "rules.yaml")
    [problem] = refused(path)
    assert (problem.line, problem.column, problem.key) == (4, 1, "teems")
    assert problem.message.startswith("unknown key")


def test_unknown_key_inside_a_queue_is_refused(write):
    path = write("""
        version: 1
        queues:
          general:
            address: support@example.com
            owner: alice@example.com
    """, "rules.yaml")
    [problem] = refused(path)
    assert str(problem) == (f"{path}:5:5: queues.general.owner: unknown key "
                            "(allowed here: address, team, sla)")


def test_bad_queue_name_and_bad_address_are_both_reported(write):
    path = write("""
        version: 1
        queues:
          General Support: {address: support@example.com}
          billing: {address: not-an-address}
    """, "rules.yaml")
    problems = refused(path)
    assert [(p.line, p.key) for p in problems] == [
        (3, "queues.General Support"), (4, "queues.billing.address")]
    assert "lower-case letters" in problems[0].message
    assert "not a mail address" in problems[1].message


def test_queue_must_be_a_mapping(write):
    path = write("version: 1\nqueues:\n  general: support@example.com\n", "rules.yaml")
    [problem] = refused(path)
    assert (problem.line, problem.column, problem.key) == (3, 3, "queues.general")
    assert problem.message == "expected a mapping, got string 'support@example.com'"


def test_yaml_syntax_error_is_refused_with_its_line(write):
    path = write("version: 1\nqueues:\n  general: {address: [support@example.com}\n", "rules.yaml")
    [problem] = refused(path)
    assert problem.line == 3 and problem.key == ""
    assert str(problem).startswith(f"{path}:3:")
