"""The measurement script (templates/llamafleet/libexec/measure.bash.j2), rendered as
`plan --measure` renders it and run by bash against a llama-server stand-in: a process that
logs llama.cpp's load lines, answers /health with 503 while "loading" and then 200, and answers
/completion with llama-server's timings."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from types import SimpleNamespace

from llamafleet.measure import _script
from llamafleet.measure_math import parse_run

STAND_IN = textwrap.dedent('''
    import http.server, json, sys, time
    port = int(sys.argv[sys.argv.index("--port") + 1])
    print("print_info: n_layer               = 18", file=sys.stderr, flush=True)
    print("load_tensors: RPC0[127.0.0.1:50052] model buffer size =    50.00 MiB", file=sys.stderr, flush=True)
    print("argv " + " ".join(sys.argv[1:]), file=sys.stderr, flush=True)
    started = time.monotonic()
    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def do_GET(self):
            loading = time.monotonic() - started < 1.0
            self._send(503 if loading else 200, {"status": "loading" if loading else "ok"})
        def do_POST(self):
            if self.headers.get("Authorization") != "Bearer s3cret":
                return self._send(401, {"error": "Invalid API Key"})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert body["n_predict"] == 16 and body["prompt"]
            self._send(200, {"content": "x", "timings": {"predicted_n": 16, "predicted_ms": 320.5}})
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
''')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_script_waits_for_the_load_times_two_completions_and_ends_the_server(tmp_path):
    (tmp_path / "bin").mkdir()
    stand_in = tmp_path / "bin" / "llama-server"
    stand_in.write_text(f"#!/bin/sh\nexec {sys.executable} {tmp_path / 'stand_in.py'} \"$@\"\n")
    stand_in.chmod(0o755)
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    (tmp_path / "logs").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "api-key").write_text("s3cret\n")
    port = free_port()
    master = SimpleNamespace(base=str(tmp_path), binary="llama-server", model_path="/models/m.gguf",
                             service_user=None, service_group=None)
    plan = SimpleNamespace(master=SimpleNamespace(server_port=port, threads=2, load_mode="mmap"))
    script = _script(plan, master, "/bin/bash", "3", "127.0.0.1:50052")
    done = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    run = parse_run(done.stdout + done.stderr)
    assert run.ms_per_token == 320.5 / 16 and run.rpc_mb == 50.0 and run.n_layer == 18
    assert run.load_ms >= 900  # /health answered 503 for the first second
    log = (tmp_path / "logs" / "measure.log").read_text()
    assert ("-ngl 3 -t 2 -c 512 --load-mode mmap -lv 4 --rpc 127.0.0.1:50052 -ts 1 --api-key-file "
            f"{tmp_path}/etc/api-key") in log, log
    # The server ended with the script: nothing listens on its port any more (SO_REUSEADDR:
    # its closed connections may still wait in TIME_WAIT).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_a_server_that_dies_while_loading_is_reported_with_its_last_lines(tmp_path):
    (tmp_path / "bin").mkdir()
    stand_in = tmp_path / "bin" / "llama-server"
    stand_in.write_text("#!/bin/sh\necho 'failed to connect to 127.0.0.1:50052' >&2\nexit 1\n")
    stand_in.chmod(0o755)
    (tmp_path / "logs").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "api-key").write_text("s3cret\n")
    master = SimpleNamespace(base=str(tmp_path), binary="llama-server", model_path="/m.gguf",
                             service_user=None, service_group=None)
    plan = SimpleNamespace(master=SimpleNamespace(server_port=free_port(), threads=1, load_mode="none"))
    done = subprocess.run(["/bin/bash", "-c", _script(plan, master, "/bin/bash", "all", "127.0.0.1:50052")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "error=llama-server ended while loading: failed to connect to 127.0.0.1:50052" in done.stdout
