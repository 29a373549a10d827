"""maild.yaml: the sysadmin's file becomes Settings, or an error that says file:line:column."""
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from playhouse.db_url import connect

from maild.config import (TRUST_NONE_WARNING, Trust, default_config_path, load_settings,
                          parse_listen, redact_url)
from maild.relay import MaildirRelay, SmtpRelay, relay_from_url
from rules.source import ConfigError, ConfigProblem

CONTRACT = """
    database: sqlite:///var/lib/maild/maild.db   # or postgresql://user@host/db
    spool: /var/lib/maild/spool
    listen: {lmtp: "127.0.0.1:2424", smtp: "127.0.0.1:2525"}
    outbound: {relay: "smtp://127.0.0.1:25"}     # or "maildir:/path" for development
    helpdesk: {name: Acme Support, address: support@example.com, token_prefix: Acme, hostname: example.com}
    rules: /etc/maild/rules.yaml
"""

MINIMAL = """\
database: sqlite:///var/lib/maild/maild.db
spool: /var/lib/maild/spool
outbound: {relay: "smtp://127.0.0.1:25"}
helpdesk: {name: Acme Support, address: support@example.com, token_prefix: Acme}
rules: /etc/maild/rules.yaml
"""


def refused(path: Path) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.problems


def with_line(key: str, line: str) -> str:
    """MINIMAL with its `key:` line replaced (or the line added when key is new)."""
    lines = MINIMAL.splitlines()
    out = [line if raw.startswith(f"{key}:") else raw for raw in lines]
    if out == lines:
        out.append(line)
    return "\n".join(out) + "\n"


# --- the good file --------------------------------------------------------------------

def test_the_contract_example_loads_with_resolved_values(write):
    path = write(CONTRACT)
    settings = load_settings(path)
    assert settings.database_url == "sqlite:////var/lib/maild/maild.db"
    assert settings.sqlite_path == Path("/var/lib/maild/maild.db")
    assert settings.spool_dir == Path("/var/lib/maild/spool")
    assert settings.listen.lmtp == "127.0.0.1:2424"
    assert settings.listen.smtp == "127.0.0.1:2525"
    assert settings.outbound.maildir is None
    assert settings.outbound.relay == "smtp://127.0.0.1:25"
    assert settings.outbound.max_attempts == 10
    assert settings.outbound.mail_from == "support@example.com"
    assert settings.helpdesk.name == "Acme Support"
    assert settings.helpdesk.address == "support@example.com"
    assert settings.helpdesk.token_prefix == "Acme"
    assert settings.helpdesk.hostname == "example.com"
    assert settings.rules_path == Path("/etc/maild/rules.yaml")
    assert settings.limits.max_message_size == 26214400
    assert settings.limits.auto_replies_per_hour == 3
    assert settings.log_level == "info"
    assert settings.config_path == path


def test_peewee_opens_the_absolute_sqlite_file_the_sysadmin_wrote(write):
    settings = load_settings(write(CONTRACT))
    assert connect(settings.database_url).database == "/var/lib/maild/maild.db"


def test_settings_are_frozen(write):
    settings = load_settings(write(CONTRACT))
    with pytest.raises(AttributeError):
        settings.log_level = "debug"


def test_optional_keys_take_their_defaults(write):
    settings = load_settings(write(MINIMAL))
    assert settings.listen.lmtp is None and settings.listen.smtp is None   # ingest only
    assert settings.helpdesk.hostname == "example.com"                    # from the address
    assert settings.outbound.mail_from == "support@example.com"


def test_optional_keys_can_be_set(write):
    settings = load_settings(write(
        MINIMAL + "limits: {max_message_size: 1000, auto_replies_per_hour: 0}\nlog_level: DEBUG\n"))
    assert settings.limits.max_message_size == 1000
    assert settings.limits.auto_replies_per_hour == 0
    assert settings.log_level == "debug"


@pytest.mark.parametrize("text, size", [
    ('"25MB"', 26214400), ('"25 MiB"', 26214400), ("512k", 524288), ("1G", 1073741824),
    ('"100"', 100), (12345, 12345),
])
def test_message_size_accepts_units(write, text, size):
    settings = load_settings(write(with_line("limits", f"limits: {{max_message_size: {text}}}")))
    assert settings.limits.max_message_size == size


def test_relative_paths_resolve_against_the_config_folder_not_cwd(write, tmp_path, monkeypatch):
    write("""
        database: sqlite:var/maild.db
        spool: spool
        listen: {lmtp: "unix:run/lmtp.sock"}
        outbound: {relay: "maildir:outbox"}
        helpdesk: {name: Acme Support, address: support@example.com, token_prefix: Acme}
        rules: ../rules.yaml
    """, name="etc/maild.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(Path("../etc/maild.yaml"))
    etc = tmp_path / "etc"
    assert settings.config_path == etc / "maild.yaml"
    assert settings.database_url == f"sqlite:///{etc}/var/maild.db"
    assert connect(settings.database_url).database == f"{etc}/var/maild.db"
    assert settings.spool_dir == etc / "spool"
    assert settings.listen.lmtp == f"unix:{etc}/run/lmtp.sock"
    assert settings.outbound.relay == f"maildir:{etc}/outbox"
    assert settings.outbound.maildir == etc / "outbox"
    assert settings.rules_path == tmp_path / "rules.yaml"


@pytest.mark.parametrize("url, expected", [
    ("sqlite:///srv/m.db", "sqlite:////srv/m.db"),
    ("sqlite:////srv/m.db", "sqlite:////srv/m.db"),         # SQLAlchemy's absolute form
    ("sqlite:/srv/m.db", "sqlite:////srv/m.db"),
    ("postgresql://maild@db.example.com/maild", "postgresql://maild@db.example.com/maild"),
    ("postgres://maild:secret@127.0.0.1:5432/test", "postgres://maild:secret@127.0.0.1:5432/test"),
])
def test_database_url_forms(write, url, expected):
    assert load_settings(write(with_line("database", f"database: {url}"))).database_url == expected


@pytest.mark.parametrize("spec, expected", [
    ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("localhost:2424", ("localhost", 2424)),
    ("[::1]:2424", ("::1", 2424)),
    ("*:25", (None, 25)),
    ("unix:/run/maild/lmtp.sock", Path("/run/maild/lmtp.sock")),
])
def test_parse_listen(spec, expected):
    assert parse_listen(spec) == expected


def test_default_config_path(monkeypatch):
    monkeypatch.delenv("MAILD_CONFIG", raising=False)
    assert default_config_path() == Path("/etc/maild/maild.yaml")
    monkeypatch.setenv("MAILD_CONFIG", "/srv/maild.yaml")
    assert default_config_path() == Path("/srv/maild.yaml")


# --- the bad file: every problem, with file, line, column and key ----------------------

def test_unknown_key_at_depth_two_names_file_line_column_and_key(write):
    path = write("""
        database: sqlite:///var/lib/maild/maild.db
        spool: /var/lib/maild/spool
        listen:
          lmtp: "127.0.0.1:2424"
          lmpt: "127.0.0.1:2425"
        outbound: {relay: "smtp://127.0.0.1:25"}
        helpdesk: {name: Acme Support, address: support@example.com, token_prefix: Acme}
        rules: /etc/maild/rules.yaml
    """)
    [problem] = refused(path)
    assert (problem.file, problem.line, problem.column) == (str(path), 5, 3)
    assert problem.key == "listen.lmpt"
    assert str(problem).startswith(f"{path}:5:3: listen.lmpt: unknown key; did you mean 'lmtp'?")


def test_wrong_type_is_reported_at_its_line(write):
    [problem] = refused(write(with_line("listen", "listen: 2424")))
    assert (problem.line, problem.column, problem.key) == (6, 1, "listen")
    assert problem.message == "expected a mapping, got integer 2424"


def test_a_number_where_text_is_expected_is_refused(write):
    [problem] = refused(write(with_line("spool", "spool: 5")))
    assert (problem.line, problem.key) == (2, "spool")
    assert "expected a string" in problem.message


def test_two_errors_in_one_file_are_both_reported(write):
    path = write("""
        database: sqlite:///var/lib/maild/maild.db
        spool: /var/lib/maild/spool
        outbound: {relay: "smtp://127.0.0.1:25", max_attempts: many}
        helpdesk:
          name: Acme Support
          address: support@example.com
          token_prefix: Acme
          colour: blue
        rules: /etc/maild/rules.yaml
    """)
    problems = refused(path)
    assert [(p.line, p.key) for p in problems] == [
        (3, "outbound.max_attempts"), (8, "helpdesk.colour")]
    assert str(ConfigError(problems)).splitlines() == [str(p) for p in problems]


def test_missing_required_key_is_named(write):
    [problem] = refused(write(MINIMAL.replace("rules: /etc/maild/rules.yaml\n", "")))
    assert (problem.key, problem.message) == ("rules", "required key is missing")


def test_duplicate_key_is_refused_with_its_line(write):
    path = write(MINIMAL + "spool: /tmp/other\n")
    [problem] = refused(path)
    assert problem.line == 6
    assert 'duplicate key "spool"' in problem.message
    assert str(problem).startswith(f"{path}:6:1: ")


def test_yaml_syntax_error_is_refused_with_its_line(write):
    path = write("""
        database: sqlite:///var/lib/maild/maild.db
        spool: /var/lib/maild/spool
        listen: {lmtp: "127.0.0.1:2424"
        rules: /etc/maild/rules.yaml
    """)
    [problem] = refused(path)
    assert (problem.file, problem.line) == (str(path), 4)
    assert "flow mapping" in problem.message and "line 3" in problem.message


def test_unreadable_file_is_a_config_error(tmp_path):
    [problem] = refused(tmp_path / "missing.yaml")
    assert "cannot read" in problem.message
    assert str(problem).startswith(f"{tmp_path / 'missing.yaml'}: cannot read")


@pytest.mark.parametrize("line, key, words", [
    ('listen: {lmtp: "2424"}', "listen.lmtp", "expected host:port or unix:/path"),
    ('listen: {lmtp: "127.0.0.1:70000"}', "listen.lmtp", "port 70000 is out of range"),
    ('listen: {smtp: "::1:25"}', "listen.smtp", "IPv6 address in brackets"),
    ('listen: {smtp: "[nope]:25"}', "listen.smtp", "not an IPv6 address"),
    ('listen: {smtp: "unix:"}', "listen.smtp", "needs a socket path"),
    ('outbound: {relay: "lmtp://127.0.0.1:24"}', "outbound.relay", "unsupported relay"),
    ('outbound: {relay: "smtp://"}', "outbound.relay", "names no host"),
    ('outbound: {relay: "maildir:"}', "outbound.relay", "use maildir:/path"),
    ('outbound: {relay: "smtp://h:25", max_attempts: 0}', "outbound.max_attempts",
     "expected at least 1, got integer 0"),
    ('database: mysql://u@h/db', "database", "unsupported database 'mysql://u@h/db'"),
    ('database: "sqlite://host/m.db"', "database", "names no host"),
    ('database: "sqlite:///"', "database", "has no file"),
    ('database: postgresql://u@h', "database", "names no database"),
    ('database: "sqlite:///srv/m.db?timeout=5"', "database", "takes no ?options"),
    ('helpdesk: {name: A, address: support, token_prefix: A}', "helpdesk.address",
     "not a mail address"),
    ('helpdesk: {name: A, address: "A <a@example.com>", token_prefix: A}', "helpdesk.address",
     "bare address"),
    ('helpdesk: {name: A, address: a@example.com, token_prefix: "A #"}', "helpdesk.token_prefix",
     "letters, digits"),
    ('limits: {max_message_size: "25 parsecs"}', "limits.max_message_size", "like '25MB'"),
    ('limits: {max_message_size: 0}', "limits.max_message_size", "above 0"),
    ('log_level: loud', "log_level", "unknown log level 'loud'"),
])
def test_bad_values_get_clear_messages(write, line, key, words):
    key_word = line.partition(":")[0]
    path = write(with_line(key_word, line))
    [problem] = refused(path)
    assert problem.key == key
    assert words in problem.message
    assert problem.line == with_line(key_word, line).splitlines().index(line) + 1


def test_lmtp_and_smtp_cannot_share_an_address(write):
    [problem] = refused(write(with_line("listen", 'listen: {lmtp: "[::1]:25", smtp: "[::1]:25"}')))
    assert (problem.line, problem.key) == (6, "listen.smtp")
    assert "same address as listen.lmtp" in problem.message


def test_empty_listen_section_means_no_listeners(write):
    settings = load_settings(write(with_line("listen", "listen:\n  # lmtp: 127.0.0.1:2424")))
    assert settings.listen.lmtp is None and settings.listen.smtp is None


def test_yaml_1_2_keeps_no_as_a_string(write):
    # PyYAML would turn this into False; we must see the sysadmin's word, and refuse it.
    [problem] = refused(write(with_line("log_level", "log_level: no")))
    assert problem.message.startswith("unknown log level 'no'")


def test_listen_specs_the_listener_understands_are_kept(write):
    line = 'listen: {lmtp: "*:2424", smtp: "[::1]:2525"}'
    settings = load_settings(write(with_line("listen", line)))
    assert (settings.listen.lmtp, settings.listen.smtp) == ("*:2424", "[::1]:2525")


# --- relay URLs: exactly what maild.relay accepts (S9) ----------------------------------

@pytest.mark.parametrize("url, host, tls, port, verify, helo", [
    ("smtp+starttls://host:587", "host", "starttls", 587, True, None),
    ("smtp+starttls://relay.example.com", "relay.example.com", "starttls", 587, True, None),
    ("smtps://host:465?verify=no", "host", "implicit", 465, False, None),
    ("smtp://host?helo=mx.example.com", "host", "none", 25, True, "mx.example.com"),
    ("SMTP://host:2525", "host", "none", 2525, True, None),
    ("smtps://mail%40example.com:p%2Fss@host?helo=mx.example.com&verify=no",
     "host", "implicit", 465, False, "mx.example.com"),
])
def test_relay_urls_the_relay_implements_are_accepted_unchanged(write, url, host, tls, port,
                                                                verify, helo):
    settings = load_settings(write(with_line("outbound", f'outbound: {{relay: "{url}"}}')))
    assert settings.outbound.relay == url
    assert settings.outbound.maildir is None
    relay = relay_from_url(settings.outbound.relay)
    assert isinstance(relay, SmtpRelay)
    assert (relay.host, relay.tls, relay.port, relay.verify, relay.local_hostname) == (
        host, tls, port, verify, helo)


@pytest.mark.parametrize("url, words", [
    ("ftp://x", "unsupported relay URL ftp://x: use smtp://, smtp+starttls://, smtps://"),
    ("smtp://host?verfy=no", "unknown option(s) ['verfy']"),
    ("smtps://host:465?verify=no&port=2", "unknown option(s) ['port']"),
    ("smtp://user@host", "both a user and a password"),
    ("smtp://host:mail", "bad port"),
    ("smtp://", "names no host"),
    ("maildir://host/x", "use maildir:/path"),
    ("lmtp://127.0.0.1:24", "unsupported relay"),
])
def test_other_relay_urls_are_refused_with_file_line_and_a_clear_message(write, url, words):
    line = f'outbound: {{relay: "{url}"}}'
    path = write(with_line("outbound", line))
    [problem] = refused(path)
    assert (problem.file, problem.line, problem.key) == (str(path), 3, "outbound.relay")
    assert words in problem.message
    assert str(problem).startswith(f"{path}:3:")


@pytest.mark.parametrize("url", [
    "smtp://h", "smtp+starttls://u:p@h:587", "smtps://h?verify=no", "smtp://h?helo=x.example",
    "smtp://h?verify=off&helo=a", "smtp://h?bogus=1", "smtp://u@h", "smtp://u:@h", "smtp://:p@h",
    "smtp://h:99999", "smtp://h:x", "smtp://", "smtp:h", "smtp+tls://h", "smtps+starttls://h",
    "maildir:/srv/mail", "maildir:rel", "maildir:", "maildir://h/x", "maildir:///srv/mail",
    "ftp://h", "h:25", "lmtp://h",
])
def test_config_and_relay_agree_on_every_relay_url(write, url):
    try:
        relay_from_url(url)
        relay_accepts = True
    except ValueError:
        relay_accepts = False
    try:
        load_settings(write(with_line("outbound", f'outbound: {{relay: "{url}"}}')))
        config_accepts = True
    except ConfigError:
        config_accepts = False
    assert config_accepts == relay_accepts


def test_checking_the_relay_opens_no_connection_and_logs_nothing(write, caplog, monkeypatch):
    def no_connections(*args, **kwargs):
        raise AssertionError("config opened a connection")
    monkeypatch.setattr("socket.create_connection", no_connections)
    monkeypatch.setattr("socket.socket.connect", no_connections)
    relay_logger = logging.getLogger("maild.relay")
    filters = list(relay_logger.filters)
    caplog.set_level(logging.DEBUG)
    # credentials without TLS to a remote host: the daemon warns when it builds the relay
    line = 'outbound: {relay: "smtp://mail:RelaySecret2@relay.example.com"}'
    load_settings(write(with_line("outbound", line)))
    assert caplog.records == []
    assert relay_logger.filters == filters                # the silencing is undone
    with caplog.at_level(logging.WARNING, logger="maild.relay"):
        relay_from_url("smtp://mail:RelaySecret2@relay.example.com")
    assert "without TLS" in caplog.text and "RelaySecret2" not in caplog.text


def test_importing_config_does_not_import_the_smtp_client():
    code = "import sys, maild.config; assert 'aiosmtplib' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("written, folder", [
    ("maildir:out%20box", "out box"),
    ("maildir:odd%3Fname%23x%25", "odd?name#x%"),
    ("maildir:outbox?ignored", "outbox"),
])
def test_maildir_path_is_read_as_the_relay_reads_it(write, tmp_path, written, folder):
    settings = load_settings(write(with_line("outbound", f'outbound: {{relay: "{written}"}}')))
    assert settings.outbound.maildir == tmp_path / folder
    relay = relay_from_url(settings.outbound.relay)
    assert isinstance(relay, MaildirRelay) and relay.path == tmp_path / folder


# --- no password in any message (S8) ---------------------------------------------------

DB_SECRET, RELAY_SECRET = "DbSecret1", "RelaySecret2"


def test_a_bad_database_and_a_bad_relay_url_are_reported_without_their_passwords(write):
    relay = f'"ftp://mail:{RELAY_SECRET}@relay.example.com"'
    path = write(with_line("database", f"database: mysql://maild:{DB_SECRET}@db/maild")
                 .replace('"smtp://127.0.0.1:25"', relay))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)                   # what `maild check` and the daemon print
    assert [p.key for p in info.value.problems] == ["database", "outbound.relay"]
    assert DB_SECRET not in text and RELAY_SECRET not in text
    assert "mysql://maild:***@db/maild" in text
    assert "ftp://mail:***@relay.example.com" in text


@pytest.mark.parametrize("key, value, secrets", [
    ("database", f"mysql://maild:{DB_SECRET}@db/maild", [DB_SECRET]),
    ("database", f"postgresql://maild:{DB_SECRET}@db:port/maild", [DB_SECRET]),
    ("database", f"postgresql://maild:{DB_SECRET}@[::1/maild", [DB_SECRET]),
    ("database", "postgresql://maild:Db/Secret1@db/maild", ["Db/Secret1", "Secret1"]),
    ("database", "postgresql://maild:Db#Secret1@db/maild", ["Db#Secret1", "Secret1"]),
    ("database", "postgresql://maild:12345/Secret1@db/maild", ["12345", "Secret1"]),
    ("database", f"sqlite://maild:{DB_SECRET}@db/m.db", [DB_SECRET]),
    ("database", f"maild:{DB_SECRET}@db/maild", [DB_SECRET]),          # no scheme
    ("database", f"mysql://maild@db/maild?password={DB_SECRET}", [DB_SECRET]),
    ("outbound", f"ftp://mail:{RELAY_SECRET}@x", [RELAY_SECRET]),
    ("outbound", f"smtp://mail:{RELAY_SECRET}@host:nope", [RELAY_SECRET]),
    ("outbound", f"smtps://mail:{RELAY_SECRET}@host?bogus=1", [RELAY_SECRET]),
    ("outbound", f"smtp://mail:{RELAY_SECRET}@", [RELAY_SECRET]),
    ("outbound", f"maildir://mail:{RELAY_SECRET}@h/x", [RELAY_SECRET]),
    ("outbound", "smtp://mail:Relay/Secret2@host", ["Relay/Secret2", "Secret2"]),
    ("outbound", "smtp://mail:Relay@Secret2@host:x", ["Relay@Secret2", "Secret2"]),
    ("outbound", "smtp://mail:Relay%2FSecret2@host:x", ["Relay%2FSecret2", "Relay/Secret2"]),
    ("outbound", "smtp://mail:99/Secret2@host", ["99/", "Secret2"]),
])
def test_no_message_quotes_a_password(write, key, value, secrets):
    line = f'database: "{value}"' if key == "database" else f'outbound: {{relay: "{value}"}}'
    [problem] = refused(write(with_line(key, line)))
    assert problem.key == ("database" if key == "database" else "outbound.relay")
    for secret in secrets:
        assert secret not in str(problem)


def test_an_unencoded_slash_in_a_password_is_refused_with_the_fix(write):
    # urllib would read host 'mail', port 99 and connect there: refuse, say how to write it
    [problem] = refused(write(with_line("outbound",
                                        'outbound: {relay: "smtp://mail:99/x@host"}')))
    assert "percent-encode '/', '?' and '#'" in problem.message and "%2F" in problem.message
    assert "smtp://mail:***@host" in problem.message


@pytest.mark.parametrize("url, shown", [
    ("postgresql://maild:secret@db/maild", "postgresql://maild:***@db/maild"),
    ("smtp://user:pw@host:587", "smtp://user:***@host:587"),
    ("smtps://:pw@host", "smtps://:***@host"),
    ("smtp://user@host", "smtp://user@host"),
    ("smtp://host:25?helo=mx", "smtp://host:25?helo=mx"),
    ("maildir:/var/mail/support@example.com", "maildir:/var/mail/support@example.com"),
    ("smtp://u:pa/ss@host", "smtp://u:***@host"),
    ("smtp://u:p@ss@host", "smtp://u:***@host"),
    ("u:pw@host/db", "u:***@host/db"),
    ("smtp:/user:pw@host", "smtp:/user:***@host"),
    ("smtp:user:pw@host", "smtp:***@host"),
    ("smtp://u:pa://ss@host", "smtp://u:***@host"),
    ("postgresql://u@h/db?sslmode=require&password=pw",
     "postgresql://u@h/db?sslmode=require&password=***"),
    ("not a url", "not a url"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


# --- helpdesk behaviour and the agent trust policy ---------------------------------------

def test_helpdesk_behaviour_and_trust_take_secure_defaults(write):
    settings = load_settings(write(MINIMAL))
    desk = settings.helpdesk
    assert (desk.comment_address, desk.unknown_sender, desk.reopen_days,
            desk.expose_agent_address) == (None, "unverified", 14, False)
    # no Authentication-Results from our own MTA (named by our hostname): nobody is an agent
    assert settings.trust == Trust(agents="authentication-results", authserv_id="example.com")
    assert settings.warnings == ()


def test_helpdesk_behaviour_and_trust_can_be_set(write):
    settings = load_settings(write(MINIMAL.replace(
        "token_prefix: Acme}",
        "token_prefix: Acme, hostname: Desk.Example.com, comment_address: "
        "Support+Comment@Example.com, unknown_sender: new_ticket, reopen_days: 0, "
        "expose_agent_address: true}") + "trust: {authserv_id: MX.example.com}\n"))
    desk = settings.helpdesk
    assert desk.comment_address == "support+comment@example.com"
    assert (desk.unknown_sender, desk.reopen_days, desk.expose_agent_address) == (
        "new_ticket", 0, True)
    assert settings.trust == Trust("authentication-results", "mx.example.com")


def test_the_default_authserv_id_is_the_helpdesk_hostname(write):
    settings = load_settings(write(MINIMAL.replace("token_prefix: Acme}",
                                                   "token_prefix: Acme, hostname: MX.Acme.test}")
                                   + "trust:\n"))
    assert settings.trust == Trust("authentication-results", "mx.acme.test")


@pytest.mark.parametrize("trust", [
    "{agents: dkim}", "{agents: dkim, authserv_id: mx.example.com}",
    "{agents: none}", "{agents: none, authserv_id: ''}", "{agents: none, authserv_id: ~}",
])
def test_authserv_id_is_ignored_without_authentication_results(write, trust):
    settings = load_settings(write(with_line("trust", f"trust: {trust}")))
    assert settings.trust.authserv_id is None
    assert settings.trust.agents == trust.split(",")[0].split()[1].rstrip("}")


def test_trust_none_loads_with_a_warning(write):
    settings = load_settings(write(with_line("trust", "trust: {agents: none}")))
    assert settings.warnings == (TRUST_NONE_WARNING,)
    assert "use only for development" in TRUST_NONE_WARNING


@pytest.mark.parametrize("line, key, words", [
    ("trust: {agents: dmarc}", "trust.agents",
     "unknown trust policy 'dmarc'; use one of authentication-results, dkim, none"),
    ("trust: {agents: authentication-results, authserv_id: ''}", "trust.authserv_id",
     "empty: write the authserv-id"),
    ("trust: {authserv_id: }", "trust.authserv_id", "leave the key out"),
    ("trust: {authserv_id: 'mx.example.com; spf=pass'}", "trust.authserv_id",
     "expected the authserv-id your MTA writes first"),
    ("trust: {agents: none, authserv: mx}", "trust.authserv",
     "unknown key; did you mean 'authserv_id'?"),
    ("trust: none", "trust", "expected a mapping, got string 'none'"),
    ("helpdesk: {name: A, address: a@example.com, token_prefix: A, unknown_sender: drop}",
     "helpdesk.unknown_sender", "expected unverified (append to the ticket, flagged) or "
     "new_ticket, got 'drop'"),
    ("helpdesk: {name: A, address: a@example.com, token_prefix: A, reopen_days: -1}",
     "helpdesk.reopen_days", "expected at least 0, got integer -1"),
    ("helpdesk: {name: A, address: a@example.com, token_prefix: A, reopen_days: '14'}",
     "helpdesk.reopen_days", "expected an integer, got string '14'"),
    ("helpdesk: {name: A, address: a@example.com, token_prefix: A, expose_agent_address: no}",
     "helpdesk.expose_agent_address", "expected true or false, got string 'no'"),
    ("helpdesk: {name: A, address: a@example.com, token_prefix: A, comment_address: notes}",
     "helpdesk.comment_address", "not a mail address: 'notes'"),
    ("helpdesk: {name: A, address: a@example.com, token_prefix: A, comment_address: A@Example.COM}",
     "helpdesk.comment_address", "the same address as helpdesk.address (a@example.com)"),
])
def test_bad_helpdesk_and_trust_values_get_clear_messages(write, line, key, words):
    key_word = line.partition(":")[0]
    text = with_line(key_word, line)
    path = write(text)
    [problem] = refused(path)
    assert problem.key == key
    assert words in problem.message
    assert problem.line == text.splitlines().index(line) + 1
    assert str(problem).startswith(f"{path}:{problem.line}:")


def _runnable_config(write, trust: str) -> Path:
    write("version: 1\nqueues:\n  general: {address: support@example.com}\n", "rules.yaml")
    return write(f"""
        database: sqlite:m.db
        spool: spool
        outbound: {{relay: "maildir:out"}}
        helpdesk: {{name: Acme Support, address: support@example.com, token_prefix: Acme}}
        rules: rules.yaml
        {trust}
    """)


def test_trust_none_warns_at_every_start_and_in_maild_check(write, caplog, capsys):
    from maild import cli
    from maild.runtime import Runtime

    path = _runnable_config(write, "trust: {agents: none}")
    settings = load_settings(path)
    with caplog.at_level(logging.WARNING, logger="maild.runtime"):
        runtime = Runtime.open(settings)
        runtime.spool.close()
    [record] = [r for r in caplog.records if r.name == "maild.runtime"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"{path}: {TRUST_NONE_WARNING}"
    assert cli.main(["-c", str(path), "check"]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: warning: {TRUST_NONE_WARNING}" in err and f"{path}: ok" in out


def test_the_secure_default_starts_without_a_warning(write, caplog, capsys):
    from maild import cli
    from maild.runtime import Runtime

    path = _runnable_config(write, "")
    with caplog.at_level(logging.WARNING):
        Runtime.open(load_settings(path)).spool.close()
    assert cli.main(["-c", str(path), "check"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
