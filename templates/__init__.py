"""The templates of every outbound mail, and the sandboxed environment that renders them.

A mail template is a pair of files: ``<name>.txt.j2`` (required, the text/plain part) and
``<name>.html.j2`` (optional, the text/html alternative). ``render('ack', context)``
returns both as a :class:`Rendered`.

Where templates come from
    A site may keep its own templates in an override directory: the ``templates``
    folder next to maild.yaml (e.g. ``/etc/maild/templates``). It is searched first, file by file, then
    the templates shipped in this package. Overriding ``ack.txt.j2`` alone therefore
    keeps the packaged ``ack.html.j2``; override both files to change both parts.
    All templates are compiled when a :class:`TemplateEnvironment` is built, so a broken
    one raises :class:`TemplateInvalid` right there (at start, on SIGHUP, in ``maild
    check``); they are cached for its life. On SIGHUP build a new environment and keep
    the old one if that fails (``auto_reload`` is off: rendering never stats files).

Safety
    * Jinja2's ``SandboxedEnvironment``: no attribute access to internals, no unsafe
      callables, ``range()`` limited to 100,000 items.
    * ``StrictUndefined``: a missing context key is an error, never an empty string.
    * Autoescape on for ``*.html.j2`` and off for ``*.txt.j2``; the text part keeps the
      customer's words verbatim, the HTML part can't be made to run their markup.
    * A time bound. The sandbox limits no CPU, so every render is watched: when it runs
      longer than ``timeout`` seconds, a watchdog thread raises an exception *inside the
      rendering thread* (CPython's ``PyThreadState_SetAsyncExc``), which unwinds the
      template at its next bytecode and surfaces as :class:`TemplateTimeout`. We chose
      this over "render in a worker thread and stop waiting" because a thread can't be
      killed: an abandoned render would go on burning a core, and every retry of the
      same outbox row would start another one. The single operations that would not
      return to the interpreter in time (``10 ** 10 ** 10``, ``'x' * 10 ** 10``,
      ``'x'.center(10 ** 10)`` and the other str methods that take a length) are
      refused by the sandbox before they run, as is ``range()`` over 100,000 items
      (``range(10 ** 9)``). What is bounded is time, and the size of
      the output (``max_output``); templates come from the package and from the site's
      administrators, untrusted customer data only ever arrives as context values.

Errors are named after outcomes and all derive from :class:`TemplateError`:
:class:`TemplateNotFound`, :class:`TemplateInvalid` (doesn't compile),
:class:`TemplateRenderError` (missing value, sandbox violation, ...) and
:class:`TemplateTimeout`.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.bccache
from jinja2.lexer import Lexer
from jinja2.sandbox import SandboxedEnvironment, SecurityError

PACKAGE_DIR = Path(__file__).resolve().parent
TEXT_SUFFIX = ".txt.j2"
HTML_SUFFIX = ".html.j2"
DEFAULT_TIMEOUT = 2.0              # seconds per render (text and HTML part together)
DEFAULT_MAX_OUTPUT = 2_000_000     # characters per part
MAX_POWER_BITS = 4096              # largest integer ``**`` may produce
MAX_REPEAT_LEN = 100_000           # longest string/list ``*`` may produce


class TemplateError(Exception):
    """A template could not produce a mail."""


class TemplateNotFound(TemplateError, LookupError):
    """No template of that name, neither in the override directory nor in the package."""


class TemplateInvalid(TemplateError):
    """The template file does not compile (syntax error); names the file and line."""


class TemplateRenderError(TemplateError):
    """Rendering failed: a missing context value, a sandbox violation, a runtime error."""


class TemplateTimeout(TemplateRenderError, TimeoutError):
    """Rendering ran longer than the environment's time bound and was stopped."""


@dataclass(frozen=True)
class Rendered:
    text: str
    html: str | None


# -- the time bound ------------------------------------------------------------------

class _Interrupted(BaseException):
    """Raised inside a render by the watchdog. BaseException, so that no ``except
    Exception`` in Jinja or in a filter can swallow it; never leaves this module."""


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


class _Watchdog:
    """One daemon thread that interrupts renders running past their deadline.

    The interrupt can land at any bytecode of the rendering thread while it is armed, so
    that thread only ever touches state here through operations that are atomic under
    the GIL or guarded by a C-level ``threading.Lock`` taken with ``with`` (never a
    ``Condition``/``Event``, whose Python code could be left holding a lock). Injection
    and disarming both happen under ``_mutex``, so an interrupt is either delivered
    inside the render or cleared before ``render()`` returns; it can't leak out.
    """

    def __init__(self) -> None:
        self._keys = itertools.count()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)   # the thread doesn't survive fork

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._active: dict[int, tuple[float, int]] = {}  # key -> (deadline, thread ident)
        self._kick = threading.Lock()                   # released = "look again"
        self._kick.acquire()
        self._thread: threading.Thread | None = None

    def arm(self, timeout: float) -> int:
        if self._thread is None:
            with self._mutex:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="maild-template-watchdog")
                    self._thread.start()
        key = next(self._keys)
        self._active[key] = (time.monotonic() + timeout, threading.get_ident())
        try:
            self._kick.release()
        except RuntimeError:            # a kick is already pending
            pass
        return key

    def disarm(self, key: int | None) -> bool:
        """Stop watching; True when the watchdog fired for this render."""
        if key is None:
            return False
        with self._mutex:
            if self._active.pop(key, None) is not None:
                return False
        # Fired: normally the interrupt has been raised already; if the render finished
        # in the same instant it is still pending, and is cleared here.
        _set_async_exc(ctypes.c_ulong(threading.get_ident()), None)
        return True

    def _run(self) -> None:
        while True:
            with self._mutex:
                now, nearest = time.monotonic(), None
                for key, (deadline, ident) in list(self._active.items()):
                    if deadline <= now:
                        del self._active[key]
                        _set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(_Interrupted))
                    elif nearest is None or deadline < nearest:
                        nearest = deadline
            self._kick.acquire(timeout=-1 if nearest is None else max(nearest - now, 0))


_watchdog = _Watchdog()


# -- the environment ------------------------------------------------------------------

class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates kept for the life of the process, by file and source checksum
    (Jinja's Bucket checks it): a reload, `maild check` or repeated `maild ingest` in
    one process compile each template once (~22 ms each) instead of every time.  Every
    `TemplateEnvironment` makes its environment with the same options, so a compiled
    template fits them all."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with self._lock:
            code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)      # ignored if the checksum differs

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = bucket.bytecode_to_string()
        with self._lock:
            self._code[bucket.key] = code


_COMPILED = _CompiledTemplates()


class _MailSandbox(SandboxedEnvironment):
    """The sandbox, refusing the single operations that could run for minutes in C.

    Jinja's template cache and its process-wide lexer cache are LRU structures that an
    interrupt could leave half-updated; this environment keeps its own lexer and caches
    compiled templates in a plain dict instead (``cache_size=0`` turns Jinja's off).
    """

    intercepted_binops = frozenset({"**", "*"})

    def __init__(self, **options) -> None:
        super().__init__(cache_size=0, **options)
        self._templates: dict[str, jinja2.Template] = {}
        self._own_lexer = Lexer(self)

    @property
    def lexer(self) -> Lexer:
        return self._own_lexer

    def _load_template(self, name, globals):
        template = self._templates.get(name)
        if template is None:
            template = self.loader.load(self, name, self.make_globals(globals))
            self._templates[name] = template
        elif globals:
            template.globals.update(globals)
        return template

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's signature
        """A str method that makes a string of a given length (center, ljust, zfill,
        expandtabs, ...) runs in C until done: refuse lengths over MAX_REPEAT_LEN."""
        if isinstance(getattr(__obj, "__self__", None), (str, bytes)):
            for value in (*args, *kwargs.values()):
                if isinstance(value, int) and value > MAX_REPEAT_LEN:
                    raise SecurityError(f"{__obj.__name__}({value}) is too long")
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context, op, left, right):
        if op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(left.bit_length(), 1) * right > MAX_POWER_BITS:
                raise SecurityError(f"{left} ** {right} is too large")
        if op == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    if len(seq) * times > MAX_REPEAT_LEN:
                        raise SecurityError(f"sequence * {times} is too long")
        return self.binop_table[op](left, right)


def first_lines(text: str, n: int = 8) -> str:
    """The first ``n`` lines of ``text`` with leading/trailing blank lines dropped; a
    last line ``[...]`` says that more followed."""
    lines = str(text).strip("\r\n").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > n:
        lines = lines[:n] + ["[...]"]
    return "\n".join(lines)


def quote(text: str, prefix: str = "> ") -> str:
    """Prefix every line, mail-quote style (``"> "``; empty lines get ``">"``)."""
    return "\n".join((prefix + line) if line.strip() else prefix.rstrip()
                     for line in str(text).splitlines())


class TemplateEnvironment:
    """Sandboxed Jinja2 environment over an optional override directory and the package."""

    def __init__(self, override_dir: Path | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            override_dir = Path(override_dir)
            if not override_dir.is_dir():
                raise ValueError(f"template directory {override_dir} is not a directory")
            loaders.append(jinja2.FileSystemLoader(override_dir))
        loaders.append(jinja2.FileSystemLoader(PACKAGE_DIR))
        self.override_dir = override_dir
        self.timeout = timeout
        self.max_output = max_output
        self.env = _MailSandbox(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html", "htm"),
                                                default_for_string=False, default=False),
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
            auto_reload=False, bytecode_cache=_COMPILED,
        )
        self.env.filters.update(first_lines=first_lines, quote=quote)
        # Compile everything now: a broken site template is reported at start (and by
        # `maild check`) with its file and line, not when the first mail needs it. The
        # environment is a snapshot: files added later need a new one (SIGHUP).
        self._files = frozenset(self.env.list_templates(extensions=["j2"]))
        for filename in self._files:
            self._load(filename, optional=False)

    def names(self) -> list[str]:
        """Every template name with a text part, e.g. ``['ack', 'reply']``."""
        return sorted(f[:-len(TEXT_SUFFIX)] for f in self._files if f.endswith(TEXT_SUFFIX))

    def render(self, name: str, context: Mapping) -> Rendered:
        """Render ``<name>.txt.j2`` and, when present, ``<name>.html.j2``."""
        key = None
        try:
            try:
                key = _watchdog.arm(self.timeout)
                text = self._render_file(name + TEXT_SUFFIX, context)
                html_template = self._load(name + HTML_SUFFIX, optional=True)
                html = None if html_template is None else self._run(html_template, context)
            finally:
                fired = _watchdog.disarm(key)
        except _Interrupted:
            fired = True
        if fired:
            raise TemplateTimeout(f"template {name!r} took longer than {self.timeout:g} s")
        return Rendered(text=text, html=html)

    def _render_file(self, filename: str, context: Mapping) -> str:
        return self._run(self._load(filename, optional=False), context)

    def _load(self, filename: str, *, optional: bool) -> jinja2.Template | None:
        if filename not in self._files:
            if optional:
                return None
            raise TemplateNotFound(f"no template {filename!r}")
        try:
            return self.env.get_template(filename)
        except jinja2.TemplateNotFound:
            raise TemplateNotFound(f"no template {filename!r}") from None
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or exc.name or filename
            raise TemplateInvalid(f"{where}:{exc.lineno}: {exc.message}") from exc

    def _run(self, template: jinja2.Template, context: Mapping) -> str:
        parts: list[str] = []
        size = 0
        try:
            for chunk in template.generate(context):
                size += len(chunk)
                if size > self.max_output:
                    raise TemplateRenderError(
                        f"{template.name}: output exceeds {self.max_output} characters")
                parts.append(chunk)
        except TemplateError:
            raise
        except jinja2.TemplateError as exc:      # UndefinedError, SecurityError, ...
            raise TemplateRenderError(f"{_where(template, exc)}: {exc}") from exc
        except Exception as exc:                 # a filter or a value raised
            raise TemplateRenderError(f"{_where(template, exc)}: {type(exc).__name__}: {exc}") from exc
        return "".join(parts)


def _where(template: jinja2.Template, exc: BaseException) -> str:
    """'file:line' of the template line that raised (Jinja gives the frames of compiled
    templates their file and line), else the template's file."""
    where = template.filename or template.name
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


_default: TemplateEnvironment | None = None


def default_environment() -> TemplateEnvironment:
    """The packaged templates only, no override directory."""
    global _default
    if _default is None:
        _default = TemplateEnvironment(None)
    return _default


def render(name: str, context: Mapping) -> Rendered:
    """Render with the packaged templates; the daemon uses its configured environment."""
    return default_environment().render(name, context)


# A complete context per template, for `maild check` and for tests.
SAMPLE_CONTEXTS: dict[str, dict] = {
    "ack": {
        "helpdesk": {"name": "Acme Support", "address": "support@example.com",
                     "comment_address": "support+comment@example.com"},
        "ticket": {"number": 1042, "subject": "Printer on floor 3 is jammed",
                   "token": "[Acme #1042]", "status": "new", "priority": "normal",
                   "queue": "general"},
        "customer": {"name": "Jörg Müller", "address": "joerg@example.org"},
        "message": {"subject": "Printer on floor 3 is jammed",
                    "text": "Hello,\n\nthe printer on floor 3 jams on every page since "
                            "this morning.\nWe already restarted it twice.\n\n"
                            "Thanks,\nJörg"},
    },
}
_SAMPLE_TICKET = {
    "number": 1042, "subject": "Printer on floor 3 is jammed", "status": "open",
    "priority": "high", "queue": "general", "assignee": "alice@example.com", "tags": ["hardware"],
    "token": "[Acme #1042]", "requester": {"name": "Jörg Müller", "address": "joerg@example.org"},
    "participants": [{"name": "", "address": "facilities@example.org"}],
}
_SAMPLE_HELPDESK = {"name": "Acme Support", "address": "support@example.com",
                    "comment_address": "support+comment@example.com"}
SAMPLE_CONTEXTS["ack_after_hours"] = SAMPLE_CONTEXTS["ack"]   # any `auto_reply:` template gets these
SAMPLE_CONTEXTS.update({
    "notify_agent": {
        "helpdesk": _SAMPLE_HELPDESK, "ticket": _SAMPLE_TICKET, "event": "customer_reply",
        "agent": {"name": "Alice Agent", "address": "alice@example.com"},
        "message": {"from_name": "Jörg Müller", "from_address": "joerg@example.org",
                    "text": "It jams again, page 2 this time.", "warning": ""},
        "reply": {"public": "support@example.com", "internal": "support+comment@example.com"},
    },
    "reply": {
        "helpdesk": _SAMPLE_HELPDESK, "ticket": _SAMPLE_TICKET,
        "agent": {"name": "Alice Agent", "address": ""},
        "reply": {"text": "Hello Jörg,\n\na technician is on the way.\n\nAlice"},
    },
    "command_error": {
        "helpdesk": _SAMPLE_HELPDESK, "ticket": _SAMPLE_TICKET,
        "agent": {"name": "Alice Agent", "address": "alice@example.com"},
        "errors": ["#stauts pending: unknown command"], "subject": "Re: [Acme #1042] Printer",
    },
})
_SAMPLE_LAST_MESSAGE = {"from_name": "Jörg Müller", "from_address": "joerg@example.org",
                        "at": "2026-12-01 08:10 UTC",
                        "summary": "The printer on floor 3 jams on every page since this "
                                   "morning. We already restarted it twice."}
_SAMPLE_SLA = {"policy": "standard", "clock": "first_response", "clock_label": "first response",
               "target": "8h", "calendar": "office",
               "due_at": "2026-12-01 09:30 CET", "due_at_utc": "2026-12-01 08:30 UTC"}
SAMPLE_CONTEXTS.update({         # the SLA engine's escalations (rules.yaml `sla:`)
    "sla_warning": {
        "helpdesk": _SAMPLE_HELPDESK, "ticket": _SAMPLE_TICKET,
        "recipient": {"name": "Alice Agent", "address": "alice@example.com"},
        "sla": {**_SAMPLE_SLA, "step": "80%", "breached": False, "left": "1h 36m",
                "overdue": "", "used": "6h 24m", "percent_used": 80},
        "last_message": _SAMPLE_LAST_MESSAGE,
    },
    "sla_breach": {
        "helpdesk": _SAMPLE_HELPDESK, "ticket": _SAMPLE_TICKET,
        "recipient": {"name": "", "address": "bob@example.com"},
        "sla": {**_SAMPLE_SLA, "step": "breach", "breached": True, "left": "",
                "overdue": "2h 5m", "used": "10h 5m", "percent_used": 126},
        "last_message": _SAMPLE_LAST_MESSAGE,
    },
})
