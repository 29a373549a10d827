"""Stage CPU per message, without network: the worker, then the outbound sender.

    .venv/bin/python bench/stages.py [N] [--profile worker|sender] [--repo OTHER_CHECKOUT]

N generated bench messages (ingest_mail, seed 1) are spooled, then processed by maild's
own Worker until the spool is empty, then their acknowledgements are delivered by the
Sender into a Maildir relay (store thread and executor as in the daemon).  Prints CPU ms
per message of the whole process (`time.process_time()`, all threads) and wall ms; with
--profile, cProfile of that stage (main thread only; its figures are inflated).  Log
lines go to a file, as in production.  --repo runs another checkout's code (e.g. an
older commit unpacked with `git archive`), for before/after figures.
"""
import argparse, asyncio, cProfile, pstats, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ap = argparse.ArgumentParser(); ap.add_argument("n", type=int, nargs="?", default=1000)
ap.add_argument("--profile", default=None)
ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
sys.path.insert(0, a.repo); sys.path.insert(0, a.repo + "/bench")
import ingest_mail
from maild.config import load_settings
from maild.runtime import Runtime
from maild.spool import Spool
from maild.envelope import Envelope
from maild.worker import Worker
from maild.outbound import Sender
from maild.relay import relay_from_url
from maild import logs
d = Path(tempfile.mkdtemp())
(d/"rules.yaml").write_text("version: 1\nqueues:\n  general: {address: support@bench.example}\n")
(d/"maild.yaml").write_text('database: sqlite:maild.db\nspool: spool\nlisten: {lmtp: "127.0.0.1:0"}\noutbound: {relay: "maildir:out"}\nhelpdesk: {name: Acme Support, address: support@bench.example, token_prefix: Acme, hostname: bench.example}\nrules: rules.yaml\n')
settings = load_settings(d/"maild.yaml")
logs.configure(settings.log_level)
sys.stderr = open(d/"log", "w")  # the log lines are written, as in production, to a file
spool = Spool(settings.spool_dir)
N = a.n
mails = ingest_mail.make_mails(N, a.seed)
futs = [spool.submit(m.raw, Envelope(mail_from=m.sender, rcpt_tos=("support@bench.example",), received_via="smtp")) for m in mails]
[f.result() for f in futs]
runtime = Runtime.open(settings, spool=spool)
db = runtime.open_database()
worker = Worker(spool, db, runtime.context)
pr = cProfile.Profile() if a.profile == "worker" else None
t = time.process_time(); w = time.perf_counter()
if pr: pr.enable()
while worker.process_available(): pass
if pr: pr.disable()
wt = (time.process_time()-t)*1000/N
print(f"worker ms/msg {wt:.3f} (wall {(time.perf_counter()-w)*1000/N:.3f})")
if pr: pstats.Stats(pr).sort_stats("tottime").print_stats(30); pstats.Stats(pr).sort_stats("cumulative").print_stats(40)

store = ThreadPoolExecutor(max_workers=1)
async def in_store(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(store, partial(fn, *args))
async def send_all():
    sender = Sender(relay_from_url(settings.outbound.relay), in_store, db=db,
                    max_attempts=10, loop_value="bench.example", envelope_from=settings.outbound.mail_from)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    out = settings.outbound.maildir

    while True:
        await asyncio.sleep(0.05)
        n = len(list((out/"new").iterdir())) if (out/"new").exists() else 0
        if n >= N: break
    # wait for outcomes recorded
    stop.set(); await task
pr = cProfile.Profile() if a.profile == "sender" else None
t = time.process_time(); w = time.perf_counter()
if pr: pr.enable()
asyncio.run(send_all())
if pr: pr.disable()
st = (time.process_time()-t)*1000/N
print(f"sender ms/msg {st:.3f} (wall {(time.perf_counter()-w)*1000/N:.3f})")
from store.models import Outbox
print("outbox sent", Outbox.select().where(Outbox.status=="sent").count(), "of", Outbox.select().count())
if pr: pstats.Stats(pr).sort_stats("tottime").print_stats(30); pstats.Stats(pr).sort_stats("cumulative").print_stats(40)
