"""Serves one GGUF model with llama.cpp's own HTTP server from the prebuilt `xllamacpp`
wheel (it ships no command-line program). Used by `moa local start` and
`scripts/local-llm`; the options mirror llama-server's.

    python launch.py --model FILE --port N [--alias NAME] [--ctx N] [--parallel N] [--threads N]

Runs in the foreground until SIGTERM or SIGINT. The signals are blocked before the server
exists, so its HTTP threads inherit the mask and only this thread takes them (otherwise a
server thread may swallow the signal and the process never exits)."""
import argparse
import signal
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--alias", default=None)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = a.model
    p.hostnames = [a.host]
    p.port = a.port
    p.n_ctx = a.ctx
    p.n_parallel = a.parallel
    p.cpuparams.n_threads = a.threads
    p.cpuparams_batch.n_threads = a.threads
    p.endpoint_metrics = True  # token counters the tests compare with moa's own accounts
    p.use_jinja = True  # the model's own chat template, tools included
    if a.alias:
        p.model_alias = {a.alias}  # a set: a model may have several names
    server = xllamacpp.Server(p)
    print(f"serving {a.model} on http://{a.host}:{a.port}", file=sys.stderr, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    del server


if __name__ == "__main__":
    main()
