"""maild.yaml `imap:`: mailboxes maild reads, validated at start with file:line and key."""
from __future__ import annotations

from pathlib import Path

import pytest

from maild.config import ImapAccount, load_settings
from rules.source import ConfigError, ConfigProblem

BASE = """\
database: sqlite:///var/lib/maild/maild.db
spool: /var/lib/maild/spool
outbound: {relay: "smtp://127.0.0.1:25"}
helpdesk: {name: Acme Support, address: support@example.com, token_prefix: Acme}
rules: /etc/maild/rules.yaml
imap:
"""

SUPPORT = """\
  - name: support
    url: imaps://support%40example.com@imap.example.com:993/INBOX
    password_file: imap-support.secret
    recipient: Support@Example.com
    after: move:Processed
"""


@pytest.fixture
def config(tmp_path):
    """config(items) -> path of maild.yaml with `imap:` items (YAML text); a password file
    imap-support.secret ('s3cret\\n') beside it."""
    (tmp_path / "imap-support.secret").write_text("s3cret\n")

    def config(items: str) -> Path:
        path = tmp_path / "maild.yaml"
        path.write_text(BASE + items)
        return path
    return config


def refused(path: Path) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.problems


def one_problem(path: Path) -> ConfigProblem:
    [problem] = refused(path)
    assert str(problem).startswith(f"{path}:{problem.line}:{problem.column}: {problem.key}: ")
    return problem


def test_the_issue_example_loads(config, tmp_path):
    [account] = load_settings(config(SUPPORT)).imap
    assert account == ImapAccount(
        name="support", url="imaps://support%40example.com@imap.example.com:993/INBOX",
        tls=True, host="imap.example.com", port=993, user="support@example.com",
        folder="INBOX", recipient="support@example.com", after="move", move_to="Processed",
        password="s3cret", batch=100, poll_seconds=300, idle_seconds=1500,
        timeout_seconds=30, tls_verify=True)
    assert "s3cret" not in repr(account)


def test_no_imap_section_means_no_accounts(tmp_path):
    path = tmp_path / "maild.yaml"
    path.write_text(BASE.replace("imap:\n", ""))
    assert load_settings(path).imap == ()


@pytest.mark.parametrize("url, tls, port, user, folder", [
    ("imap://desk@127.0.0.1/", False, 143, "desk", "INBOX"),
    ("imaps://desk@imap.example.com", True, 993, "desk", "INBOX"),
    ("imap://a%40b.example@127.0.0.1:10143/Support%20Mail", False, 10143, "a@b.example", "Support Mail"),
    ("IMAPS://desk@host.example/Shared/Support", True, 993, "desk", "Shared/Support"),
])
def test_url_forms(config, url, tls, port, user, folder):
    [account] = load_settings(config(SUPPORT.replace(
        "imaps://support%40example.com@imap.example.com:993/INBOX", url))).imap
    assert (account.tls, account.port, account.user, account.folder) == (tls, port, user, folder)


def test_password_file_loses_one_trailing_newline_and_is_relative_to_the_config(config, tmp_path):
    for text, password in (("pass word\n", "pass word"), ("windows\r\n", "windows"),
                           ("no newline", "no newline"), ('q"uo\\te\n', 'q"uo\\te')):
        (tmp_path / "imap-support.secret").write_text(text)
        assert load_settings(config(SUPPORT)).imap[0].password == password


def test_password_env(config, monkeypatch):
    monkeypatch.setenv("MAILD_IMAP_PW", "from-env")
    text = SUPPORT.replace("password_file: imap-support.secret", "password_env: MAILD_IMAP_PW")
    assert load_settings(config(text)).imap[0].password == "from-env"


def test_tuning_keys(config):
    text = SUPPORT + ("    batch: 20\n    poll_seconds: 60\n    idle_seconds: 600\n"
                      "    timeout_seconds: 5\n    tls_verify: false\n")
    [account] = load_settings(config(text)).imap
    assert (account.batch, account.poll_seconds, account.idle_seconds, account.timeout_seconds,
            account.tls_verify) == (20, 60, 600, 5, False)


@pytest.mark.parametrize("after, action, folder", [
    ("keep", "keep", None), ("seen", "seen", None), ("delete", "delete", None),
    ("move:Done/2024", "move", "Done/2024"),
])
def test_after_values(config, after, action, folder):
    [account] = load_settings(config(SUPPORT.replace("move:Processed", after))).imap
    assert (account.after, account.move_to) == (action, folder)


def test_after_defaults_to_keep(config):
    [account] = load_settings(config(SUPPORT.replace("    after: move:Processed\n", ""))).imap
    assert account.after == "keep"


# --- mistakes, each named with its file, line and key ------------------------------------

@pytest.mark.parametrize("old, new, key, words", [
    ("imaps://support%40example.com@imap.example.com:993/INBOX", "pop3://x@y/INBOX",
     "imap[0].url", "expected imaps://user@host"),
    ("imaps://support%40example.com@imap.example.com:993/INBOX", "imaps://imap.example.com/INBOX",
     "imap[0].url", "names no user"),
    ("imaps://support%40example.com@imap.example.com:993/INBOX", "imaps://desk@:993/INBOX",
     "imap[0].url", "names no host"),
    ("imaps://support%40example.com@imap.example.com:993/INBOX", "imaps://desk@host:99999/INBOX",
     "imap[0].url", "port"),
    ("imaps://support%40example.com@imap.example.com:993/INBOX", "imaps://desk@host:0/INBOX",
     "imap[0].url", "the port must be a number from 1 to 65535"),
    ("imaps://support%40example.com@imap.example.com:993/INBOX", "imap://desk@imap.example.com/INBOX",
     "imap[0].url", "would send the password in clear text"),
    ("move:Processed", "archive", "imap[0].after", "expected one of keep, seen, delete, move:<folder>"),
    ("move:Processed", "'move:'", "imap[0].after", "move: needs a folder"),
    ("Support@Example.com", "support", "imap[0].recipient", "not a mail address"),
    ("name: support", "name: 'my support'", "imap[0].name", "letters, digits"),
    ("password_file: imap-support.secret", "password_file: missing.secret",
     "imap[0].password_file", "cannot read"),
    ("password_file: imap-support.secret", "password_env: MAILD_TEST_UNSET_VARIABLE",
     "imap[0].password_env", "MAILD_TEST_UNSET_VARIABLE is not set"),
    ("password_file: imap-support.secret", "password_file: x\n    password_env: Y",
     "imap[0]", "exactly one of password_file and password_env"),
    ("password_file: imap-support.secret", "tls_verify: true\n    password_file: imap-support.secret",
     None, None),
    ("after: move:Processed", "after: move:INBOX", "imap[0].after", "moves mail to the folder it reads"),
    ("after: move:Processed", "after: move:inbox", "imap[0].after", "moves mail to the folder it reads"),
    ("after: move:Processed", "after: move:Inbox", "imap[0].after", "moves mail to the folder it reads"),
    ("after: move:Processed", "after: seen\n    batch: 1000", "imap[0].batch", "at most 200"),
    ("after: move:Processed", "after: seen\n    idle_seconds: 3600", "imap[0].idle_seconds", "at most 1740"),
    ("after: move:Processed", "after: seen\n    polls: 3", "imap[0].polls", "unknown key"),
])
def test_mistakes_are_named_at_start(config, old, new, key, words):
    path = config(SUPPORT.replace(old, new))
    if key is None:                                  # tls_verify with imaps: fine
        load_settings(path)
        return
    problem = one_problem(path)
    assert (problem.key, words in problem.message) == (key, True), problem.message
    assert problem.line > BASE.count("\n")            # inside the imap: section


def test_tls_verify_is_only_for_imaps(config):
    text = SUPPORT.replace("imaps://support%40example.com@imap.example.com:993/INBOX",
                           "imap://desk@127.0.0.1/INBOX") + "    tls_verify: false\n"
    assert one_problem(config(text)).key == "imap[0].tls_verify"


def test_a_password_in_the_url_is_refused_without_being_shown(config):
    text = SUPPORT.replace("support%40example.com@", "support%40example.com:hunter2@")
    problem = one_problem(config(text))
    assert problem.key == "imap[0].url" and "password_file" in problem.message
    assert "hunter2" not in str(problem)


def test_an_empty_or_multiline_password_file_is_refused(config, tmp_path):
    (tmp_path / "imap-support.secret").write_text("")
    assert "is empty" in one_problem(config(SUPPORT)).message
    (tmp_path / "imap-support.secret").write_text("two\nlines\n")
    problem = one_problem(config(SUPPORT))
    assert "line break" in problem.message and "two" not in str(problem)


def test_an_unreadable_password_file_is_named(config, tmp_path):
    (tmp_path / "secrets").mkdir()        # unreadable as a file, even for root
    problem = one_problem(config(SUPPORT.replace("imap-support.secret", "secrets")))
    assert problem.key == "imap[0].password_file"
    assert problem.message == f"cannot read {tmp_path}/secrets: Is a directory"


def test_names_and_mailboxes_are_unique(config):
    second = SUPPORT.replace("after: move:Processed", "after: seen")
    problems = refused(config(SUPPORT + second))
    assert {(p.key, p.message.split(";")[0]) for p in problems} == {
        ("imap[1].name", "imap[0] has the same name"),
        ("imap[1].url", "the same mailbox folder as imap[0]")}


def test_inbox_is_one_folder_in_any_case(config):
    """RFC 3501 §5.1: INBOX is case-insensitive, other names are not."""
    second = SUPPORT.replace("name: support", "name: billing").replace("/INBOX", "/inbox")
    [problem] = refused(config(SUPPORT + second))
    assert (problem.key, problem.message.split(";")[0]) == (
        "imap[1].url", "the same mailbox folder as imap[0]")
    other = SUPPORT.replace("name: support", "name: billing").replace("/INBOX", "/Processed")
    assert len(load_settings(config(SUPPORT + other.replace("move:Processed", "move:processed"))).imap) == 2


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "[::1]", "localhost"])
def test_imap_without_tls_is_for_loopback_only(config, host):
    text = SUPPORT.replace("imaps://support%40example.com@imap.example.com:993/INBOX",
                           f"imap://desk@{host}/INBOX")
    [account] = load_settings(config(text)).imap
    assert (account.tls, account.port) == (False, 143)


def test_maild_check_names_the_imap_key_at_fault(tmp_path, capsys):
    from maild import cli

    (tmp_path / "rules.yaml").write_text("version: 1\nqueues:\n  general: {address: support@example.com}\n")
    path = tmp_path / "maild.yaml"
    path.write_text(BASE.replace("rules: /etc/maild/rules.yaml", "rules: rules.yaml")
                    .replace("sqlite:///var/lib/maild/maild.db", "sqlite:maild.db")
                    .replace("/var/lib/maild/spool", "spool")
                    + SUPPORT.replace("imap-support.secret", "nowhere.secret"))
    assert cli.main(["-c", str(path), "check"]) != 0
    err = capsys.readouterr().err
    assert f"{path}:9:5: imap[0].password_file: cannot read {tmp_path}/nowhere.secret" in err
