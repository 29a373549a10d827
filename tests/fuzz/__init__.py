"""Fuzzing: property tests of the parsers and of the worker's no-database path.

The promise under test (issue 7): nothing in a message can make maild raise out of the
worker, hang it, or grow its memory beyond a bounded multiple of the message size.

Inputs
    `mutations.mutated_messages()`: every corpus mail (../shared/corpus, read in place),
    damaged at byte level (flip, insert NUL/CR/lone surrogates/ESC, delete, duplicate,
    truncate) and at structure level (header fields duplicated, dropped, folded,
    unfolded, made huge or empty; line ends; charsets bogus or exotic; transfer
    encodings swapped; boundaries broken; nested message/rfc822 up to 400 deep; header
    and body of two mails spliced).
    `soups.soup_messages()`: random header fields (encoded words in random charsets with
    broken base64, RFC 2231 parameters, address lists with quotes, comments and groups,
    Message-ID lists with junk, near-dates) over random bodies and MIME trees.

Targets (one file each)
    test_parse.py      parse(): storable, single-line values, or a refusal of its own
                       (`checks.ALLOWED`) with a reason; the same bytes parse the same
    test_keys.py       classify(): a known kind with evidence, our own mail a loop;
                       threading keys never raise; our Message-IDs lead back to the ticket
    test_text.py       charsets, header words, Message-IDs, quotes, command lines
    test_pipeline.py   maild.pipeline.prepare with the shipped rules and a trust policy:
                       the raw bytes kept, or a refusal; agents only when proven
    test_signals.py    one header added on top of any mail: an automatic signal is never
                       answered; our subject token or Message-ID finds the ticket
    test_memory.py     tracemalloc peak of parse() <= K x size + C on mutated corpus mail
    test_found.py      bugs found and fixed in parsers/, one test each
    test_reported.py   bugs found outside this folder's reach, xfail(strict) reproducers

Running
    In the suite each target runs a small, fixed, derandomized set of examples (the whole
    folder in ~25 s of CPU), without the example database: CI is reproducible.  Long, random
    runs on demand (examples per target; failures kept in .hypothesis/examples and
    replayed first next time; statistics give the counts):

        MAILD_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/fuzz --hypothesis-show-statistics
        .venv/bin/pytest tests/fuzz --hypothesis-profile=fuzz     # 10,000 per target
        MAILD_FUZZ_DEADLINE_MS=2000 MAILD_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/fuzz
                                                                  # hunt for near-hangs

    (The profile is registered in this folder's conftest.py, so name the folder on the
    command line.)  A failure found in a long run is kept as an explicit `@example` on
    its target, and, if the bug is in parsers/ (not message.py, feed.py, html.py), fixed
    with a test in test_found.py; otherwise reported in test_reported.py.
"""
