"""rules.yaml agents and teams: who works which queue, and whom '#assign alice' means."""
import pytest

from rules.load import load_rules
from rules.model import Agent, Queue, Ruleset, Team
from rules.source import ConfigError, ConfigProblem

GOOD = """
    version: 1
    agents:
      - {address: Alice@Example.com, name: Alice Agent, aliases: [alice@CORP.example.com]}
      - {address: bob@example.com, name: Bob Builder}
      - address: carol@example.com
        name: Carol Alice
    teams:
      l1: {members: [alice@example.com, bob@example.com]}
      finance-2: {members: [carol@example.com]}
    queues:
      general: {address: support@example.com, team: l1}
      billing: {address: billing@example.com, team: finance-2}
      sales: {address: sales@example.com}
"""


def refused(path) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    return info.value.problems


def rules(write, text: str):
    return write(text, "rules.yaml")


@pytest.fixture
def ruleset(write) -> Ruleset:
    return load_rules(rules(write, GOOD))


# --- the good file ----------------------------------------------------------------------

def test_agents_teams_and_queue_teams_load_lower_cased_in_file_order(ruleset):
    assert ruleset.agents == (
        Agent("alice@example.com", "Alice Agent", ("alice@corp.example.com",)),
        Agent("bob@example.com", "Bob Builder"),
        Agent("carol@example.com", "Carol Alice"))
    assert ruleset.teams == (Team("l1", ("alice@example.com", "bob@example.com")),
                             Team("finance-2", ("carol@example.com",)))
    assert ruleset.queues == (Queue("general", "support@example.com", "l1"),
                              Queue("billing", "billing@example.com", "finance-2"),
                              Queue("sales", "sales@example.com"))
    assert ruleset.agents[0].addresses == ("alice@example.com", "alice@corp.example.com")


def test_an_agent_is_found_by_address_or_alias_in_any_case(ruleset):
    alice = ruleset.agents[0]
    assert ruleset.agent_for("alice@example.com") is alice
    assert ruleset.agent_for(" ALICE@corp.example.com ") is alice
    assert ruleset.agent_for("support@example.com") is None
    assert ruleset.agent_addresses == frozenset(
        {"alice@example.com", "alice@corp.example.com", "bob@example.com", "carol@example.com"})


def test_a_queue_is_worked_by_its_team_and_a_queue_without_team_by_everyone(ruleset):
    names = lambda agents: [a.name for a in agents]   # noqa: E731
    assert names(ruleset.agents_for_queue("general")) == ["Alice Agent", "Bob Builder"]
    assert names(ruleset.agents_for_queue("billing")) == ["Carol Alice"]
    assert names(ruleset.agents_for_queue("sales")) == ["Alice Agent", "Bob Builder",
                                                        "Carol Alice"]
    assert ruleset.agents_for_queue("removed-by-reload") == ruleset.agents


def test_queues_and_teams_are_found_by_name(ruleset):
    assert ruleset.queue("billing").address == "billing@example.com"
    assert ruleset.queue("nope") is None
    assert ruleset.team("l1").members == ("alice@example.com", "bob@example.com")
    assert ruleset.team("nope") is None
    assert ruleset.queue_for_address("SALES@example.com").name == "sales"   # still works


def test_agents_and_teams_are_optional_and_may_be_empty(write):
    ruleset = load_rules(rules(write, """
        version: 1
        agents:
        teams: {}
        queues:
          general: {address: support@example.com}
    """))
    assert ruleset.agents == () and ruleset.teams == ()
    assert ruleset.agents_for_queue("general") == ()
    assert ruleset.agent_addresses == frozenset()


def test_a_team_member_written_as_an_alias_is_the_agent(write):
    ruleset = load_rules(rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent, aliases: [a@corp.example.com]}
        teams:
          l1: {members: [A@Corp.Example.com]}
        queues:
          general: {address: support@example.com, team: l1}
    """))
    assert ruleset.team("l1").members == ("alice@example.com",)


# --- #assign: match_agents --------------------------------------------------------------

@pytest.mark.parametrize("text, names", [
    ("alice@example.com", ["Alice Agent"]),               # address
    ("<ALICE@corp.example.com>", ["Alice Agent"]),        # alias, any case, brackets
    ("alice agent", ["Alice Agent"]),                     # full name
    (" Carol   Alice ", ["Carol Alice"]),                 # full name, spaces collapsed
    ("bob", ["Bob Builder"]),                             # local part
    ("alice", ["Alice Agent"]),                           # local part before first name
    ("Carol", ["Carol Alice"]),                           # first word of the name
    ("Builder", []),                                      # the last name is no kind
    ("dave", []),
    ("", []),
])
def test_match_agents(ruleset, text, names):
    assert [a.name for a in ruleset.match_agents(text)] == names


def test_match_agents_returns_every_match_of_the_first_kind_that_matches(write):
    ruleset = load_rules(rules(write, """
        version: 1
        agents:
          - {address: asmith@example.com, name: Alice Smith}
          - {address: ajones@example.com, name: Alice Jones}
          - {address: alice@example.com, name: Al Ice}
          - {address: al@example.com, name: Alice}
        queues:
          general: {address: support@example.com}
    """))
    match = lambda text: [a.address for a in ruleset.match_agents(text)]   # noqa: E731
    assert match("alice") == ["al@example.com"]                 # full name beats local part
    assert match("al") == ["al@example.com"]                    # local part beats first word
    assert match("alice smith") == ["asmith@example.com"]
    ruleset = Ruleset(1, ruleset.queues, ruleset.agents[:3])
    assert match("alice") == ["alice@example.com"]              # local part beats first word
    ruleset = Ruleset(1, ruleset.queues, ruleset.agents[:2])
    assert match("ALICE") == ["asmith@example.com", "ajones@example.com"]   # ambiguous


# --- mistakes, each at its line ---------------------------------------------------------

def test_an_agent_address_used_twice_is_refused_at_the_second(write):
    path = rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent}
          - name: Bob Builder
            address: ALICE@example.com
        queues:
          general: {address: support@example.com}
    """)
    [problem] = refused(path)
    assert str(problem) == (f"{path}:5:5: agents[1].address: address ALICE@example.com already "
                            "belongs to agent 'Alice Agent' (agents[0])")


def test_an_alias_that_is_another_agents_address_is_refused_at_the_alias(write):
    path = rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent}
          - address: bob@example.com
            name: Bob Builder
            aliases:
              - builder@example.com
              - alice@example.com
        queues:
          general: {address: support@example.com}
    """)
    [problem] = refused(path)
    assert (problem.line, problem.column, problem.key) == (8, 9, "agents[1].aliases[1]")
    assert "already belongs to agent 'Alice Agent'" in problem.message


def test_an_alias_repeating_the_agents_own_address_is_refused(write):
    [problem] = refused(rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice, aliases: [Alice@example.com]}
        queues:
          general: {address: support@example.com}
    """))
    assert (problem.line, problem.key) == (3, "agents[0].aliases[0]")
    assert problem.message == "address Alice@example.com already belongs to this agent"


def test_an_agent_address_may_not_be_a_queue_address(write):
    path = rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent}
          - {address: Billing@example.com, name: Billing Team}
        queues:
          general: {address: support@example.com}
          billing: {address: billing@example.com}
    """)
    [problem] = refused(path)
    assert (problem.line, problem.key) == (4, "agents[1].address")
    assert "is the address of queue 'billing'" in problem.message


def test_a_bad_agent_address_and_a_missing_name_are_both_reported(write):
    path = rules(write, """
        version: 1
        agents:
          - {address: "Alice <alice@example.com>", name: Alice}
          - {address: bob@example.com}
          - {address: carol@example.com, name: "  "}
        queues:
          general: {address: support@example.com}
    """)
    problems = refused(path)
    assert [(p.line, p.key) for p in problems] == [
        (3, "agents[0].address"), (4, "agents[1].name"), (5, "agents[2].name")]
    assert "bare address" in problems[0].message
    assert problems[1].message == "required key is missing"     # name
    assert "non-empty name" in problems[2].message


def test_agents_must_be_a_list(write):
    [problem] = refused(rules(write, """
        version: 1
        agents: {alice@example.com: Alice}
        queues:
          general: {address: support@example.com}
    """))
    assert (problem.line, problem.key) == (2, "agents")
    assert problem.message == "expected a list, got a mapping"


def test_an_unknown_key_in_an_agent_or_a_team_is_refused_with_a_hint(write):
    path = rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice, alias: [a@example.com]}
        teams:
          l1: {members: [alice@example.com], lead: alice@example.com}
        queues:
          general: {address: support@example.com, team: l1}
    """)
    problems = refused(path)
    assert [(p.line, p.key) for p in problems] == [(3, "agents[0].alias"),
                                                   (5, "teams.l1.lead")]
    assert problems[0].message == ("unknown key; did you mean 'aliases'? "
                                   "(allowed here: address, name, aliases, available)")
    assert problems[1].message == "unknown key (allowed here: members, assign)"


def test_a_team_member_must_be_an_agent(write):
    path = rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent}
        teams:
          l1:
            members:
              - alice@example.com
              - bob@example.com
        queues:
          general: {address: support@example.com}
    """)
    [problem] = refused(path)
    assert str(problem) == (f"{path}:8:9: teams.l1.members[1]: bob@example.com is not an "
                            "agent; add it under agents: first")


def test_a_team_member_listed_twice_is_refused(write):
    [problem] = refused(rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent, aliases: [a@example.com]}
        teams:
          l1: {members: [alice@example.com, A@example.com]}
        queues:
          general: {address: support@example.com}
    """))
    assert (problem.line, problem.key) == (5, "teams.l1.members[1]")
    assert problem.message == "A@example.com is already a member (alice@example.com)"


@pytest.mark.parametrize("members", ["[]", "", "alice@example.com"])
def test_a_team_needs_a_list_of_members(write, members):
    [problem] = refused(rules(write, f"""
        version: 1
        agents:
          - {{address: alice@example.com, name: Alice Agent}}
        teams:
          l1: {{members: {members}}}
        queues:
          general: {{address: support@example.com}}
    """))
    assert (problem.line, problem.key) == (5, "teams.l1.members")


def test_a_team_name_is_an_identifier_like_a_queue_name(write):
    [problem] = refused(rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent}
        teams:
          First Line: {members: [alice@example.com]}
        queues:
          general: {address: support@example.com}
    """))
    assert (problem.line, problem.key) == (5, "teams.First Line")
    assert problem.message.startswith("a team name is lower-case letters")


def test_a_queue_team_must_be_defined(write):
    path = rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent}
        teams:
          finance: {members: [alice@example.com]}
        queues:
          general: {address: support@example.com}
          billing:
            address: billing@example.com
            team: fianance
    """)
    [problem] = refused(path)
    assert str(problem) == (f"{path}:10:5: queues.billing.team: no team 'fianance'; "
                            "did you mean 'finance'? (teams: finance)")


def test_a_queue_team_without_any_teams_says_so(write):
    [problem] = refused(rules(write, """
        version: 1
        queues:
          general: {address: support@example.com, team: l1}
    """))
    assert (problem.line, problem.key) == (3, "queues.general.team")
    assert problem.message == "no team 'l1' (no teams are defined)"


def test_every_cross_section_mistake_is_reported_at_once_in_file_order(write):
    problems = refused(rules(write, """
        version: 1
        agents:
          - {address: alice@example.com, name: Alice Agent}
          - {address: alice@example.com, name: Alice Again}
        teams:
          l1: {members: [nobody@example.com]}
        queues:
          general: {address: support@example.com, team: l2}
    """))
    assert [p.line for p in problems] == [4, 6, 8]


# --- the model on its own ---------------------------------------------------------------

def test_the_model_lower_cases_and_refuses_an_inconsistent_ruleset():
    general = Queue("general", "support@example.com", "l1")
    alice = Agent("Alice@Example.com", "Alice", ["A@Example.com"])
    assert alice == Agent("alice@example.com", "Alice", ("a@example.com",))
    assert Team("l1", ["Alice@Example.com"]).members == ("alice@example.com",)
    with pytest.raises(ValueError, match="no team 'l1'"):
        Ruleset(1, (general,), (alice,))
    with pytest.raises(ValueError, match="not an agent's address"):
        Ruleset(1, (general,), (alice,), (Team("l1", ("a@example.com",)),))
    with pytest.raises(ValueError, match="two agents"):
        Ruleset(1, (general,), (alice, Agent("a@example.com", "Other")),
                (Team("l1", ("alice@example.com",)),))
    ruleset = Ruleset(1, (general,), (alice,), (Team("l1", ("alice@example.com",)),))
    with pytest.raises(AttributeError):
        ruleset.agents = ()
