"""`llamafleet complete` and `llamafleet verify`: ask the cluster, and prove it with testinfra."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from llamafleet.inventory_data import InventoryError, load_inventory
from llamafleet.plan import api_url_of
from llamafleet.settings import settings_for
from llamafleet.serving.secrets import secrets_location

# The testinfra suite ships in the package: `verify` works wherever llamafleet is installed.
SUITE = Path(__file__).resolve().parent / "verify_suite"


def master_api_url(inventory_path: str) -> str:
    hosts = load_inventory(inventory_path)
    masters = [h for h in hosts if h.data.get("llama_role") == "master"]
    if len(masters) != 1:
        raise InventoryError(f"{inventory_path}: llama_role: need exactly one master")
    return api_url_of(masters[0].name, settings_for(masters[0].name, masters[0].data))


def complete(api_url: str, api_key: str, prompt: str, n_predict: int = 32, timeout: float = 300) -> dict:
    """POST /completion to llama-server; returns its JSON answer (content, timings, ...)."""
    body = json.dumps({"prompt": prompt, "n_predict": n_predict, "temperature": 0, "cache_prompt": False})
    request = urllib.request.Request(
        f"{api_url}/completion",
        data=body.encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _cmd_complete(args: argparse.Namespace) -> int:
    try:
        url = args.url or master_api_url(args.inventory)
    except InventoryError as error:
        print(f"llamafleet complete: {error}", file=sys.stderr)
        return 2
    key_file = secrets_location(args.inventory) / "api-key"
    if not key_file.exists():
        print(f"llamafleet complete: no API key at {key_file} (beside the inventory): deploy this inventory first",
              file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        answer = complete(url, key_file.read_text().strip(), args.prompt, args.n_predict)
    except (urllib.error.URLError, OSError) as error:
        print(f"llamafleet complete: {url}: {error}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    timings = answer.get("timings", {})
    if args.json:
        print(json.dumps({"content": answer.get("content"), "timings": timings, "seconds": round(elapsed, 3)}))
        return 0
    print(f"{args.prompt}{answer.get('content', '')}")
    print(
        f"-- {answer.get('tokens_predicted', '?')} tokens, "
        f"{timings.get('predicted_per_second', 0):.1f} tokens/s generation, "
        f"{timings.get('prompt_per_second', 0):.1f} tokens/s prompt, {elapsed:.2f} s in all ({url})"
    )
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    command = [
        sys.executable, "-m", "pytest", str(SUITE), "--rootdir", str(SUITE),
        # anyio's plugin (an openai dependency) imports ssl before pyinfra patches it.
        "--inventory", args.inventory, "-p", "no:cacheprovider", "-p", "no:anyio", "-q", *args.pytest_args,
    ]
    return subprocess.call(command)


def register(subparsers) -> None:
    parser = subparsers.add_parser("complete", help="ask the cluster's llama-server for a completion")
    parser.add_argument("inventory", help="the pyinfra inventory of the cluster")
    parser.add_argument("prompt")
    parser.add_argument("-n", "--n-predict", type=int, default=32, help="tokens to generate (default 32)")
    parser.add_argument("--url", help="llama-server's URL (default: from the inventory's master)")
    parser.add_argument("--json", action="store_true", help="print the answer and timings as JSON")
    parser.set_defaults(func=_cmd_complete)

    parser = subparsers.add_parser("verify", help="check a deployed cluster with the testinfra suite")
    parser.add_argument("inventory")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    parser.set_defaults(func=_cmd_verify)
