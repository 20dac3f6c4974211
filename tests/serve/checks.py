"""What every client script counts: check() prints a failed expectation and keeps it; summarize()
prints the count and exits 1 when any failed."""
import sys

fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL", what, flush=True)


def summarize():
    print(f"{len(fails)} failures", flush=True)
    sys.exit(1 if fails else 0)
