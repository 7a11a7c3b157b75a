"""Secret values are masked in every form, everywhere Foundry writes (issue 12, item 4).

A real block prints each secret in every form docs/foundry.md ("Secrets and redaction") lists:
whole, one line at a time (with `\\n` and with `\\r\\n` ends), with its line ends swapped, in
base64 (standard and URL-safe, padded or not, alone and inside a longer stream at each of the
three alignments, and wrapped at 76 columns), URL-encoded and JSON-escaped. The tests then look
for every one of those forms, computed here independently of Foundry, in every output: the log
file, the ledger, the trace JSON, the Markdown, the OTLP and in-toto exports, `foundry traces
show`, the console, and under `foundry reconcile` the remote's traces branch, check runs and
claims and the runner's state.
"""

from __future__ import annotations

import base64
import html
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from foundry.redaction import MASK as FOUNDRY_MASK
from foundry.redaction import Redaction, Redactor, redact, redact_text, redaction, secret_forms
from tests.foundry_support import artifact_document, block, write_artifact
from tests.reconcile_support import World, intent, only_execution

PY = sys.executable
MASK = "***"

PEM = (
    "-----BEGIN TEST PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n"
    "-----END TEST PRIVATE KEY-----\n"
)
#: Made-up secrets: one line; a PEM-like block; CRLF line ends; JSON-special characters
#: (quotes, backslashes, control characters, non-ASCII, and a line break).
SECRETS = {
    "one-line": "tok-5c2e9a71-one-line-value",
    "pem": PEM,
    "crlf": "crlf-line-one-alpha\r\ncrlf-line-two-beta\r\ncrlf-line-three-gamma",
    "json-special": 'q"uote\\back\\slash\ttab\x07bell\x1fus <é ü 🔑> end\nsecond "line" \\ here',
}
ENV = {f"SECRET_{i}": value for i, value in enumerate(SECRETS.values())}
NAMES = dict(zip(SECRETS, ENV, strict=True))

#: The block: prints each secret named on its command line in every form.
LEAK = r"""
import base64, json, os, sys
from urllib.parse import quote, quote_plus

out = sys.stdout.buffer

def say(label, data):
    if isinstance(data, str):
        data = data.encode()
    out.write(label.encode() + b": " + data + b"\n")
    out.flush()

for name in sys.argv[1:]:
    value = os.environ[name]
    lf = value.replace("\r\n", "\n")
    crlf = lf.replace("\n", "\r\n")
    say("whole", value)
    say("whole lf", lf)
    say("whole crlf", crlf)
    for end in (b"\n", b"\r\n"):  # one line at a time, each its own write
        for line in lf.split("\n"):
            out.write(line.encode() + end)
            out.flush()
    for variant in (lf, crlf):
        data = variant.encode()
        for kind, encode in (("std", base64.b64encode), ("url", base64.urlsafe_b64encode)):
            say(f"b64 {kind}", encode(data))
            say(f"b64 {kind} unpadded", encode(data).rstrip(b"="))
            for shift in range(3):  # inside a longer stream, at each alignment
                say(f"b64 {kind} +{shift}", encode(b"\xa5" * shift + data + b"\x5a\xc3"))
        out.write(base64.encodebytes(data))  # wrapped at 76 columns, as `base64` prints it
        say("quote", quote(data, safe=""))
        say("quote /", quote(data))
        say("quote_plus", quote_plus(data))
        say("json", json.dumps(variant)[1:-1])
        say("json utf-8", json.dumps(variant, ensure_ascii=False)[1:-1])
open("out.txt", "w").write("done")
"""
LABELS = ("whole", "b64 ", "quote", "json")

#: A policy command that prints one form of a secret (from a file of the policy checkout) as
#: the last line of its output: the detail of its gate's reason.
GATE = r"""
import sys
from pathlib import Path
sys.stdout.buffer.write(b"gate saw: " + Path("forms", sys.argv[1]).read_bytes() + b"\n")
"""


# -- the forms, computed here (not by Foundry) -----------------------------------------------


def stable_base64(data: bytes, shift: int, encode: Callable[[bytes], bytes]) -> str:
    """The characters of the base64 of `data` that do not depend on the bytes around it, when
    it starts at offset `shift` (mod 3) of a longer stream: where two encodings with opposite
    bytes around it agree."""
    one = encode(b"\x00" * shift + data + b"\x00\x00\x00").decode()
    two = encode(b"\xff" * shift + data + b"\xff\xff\xff").decode()
    agreed = "".join(a if a == b else "\0" for a, b in zip(one, two, strict=True))
    return max(agreed.split("\0"), key=len)


def forms(secret: str) -> dict[str, str]:
    """Every form of `secret` that must appear nowhere, by a label saying which it is."""
    lf = secret.replace("\r\n", "\n")
    crlf = lf.replace("\n", "\r\n")
    out = {"exact": secret, "lf": lf, "crlf": crlf}
    for number, line in enumerate(lf.split("\n")):
        if len(line.strip()) >= 4:
            out[f"line {number}"] = line
    for name, variant in (("lf", lf), ("crlf", crlf)):
        data = variant.encode()
        for kind, encode in (("std", base64.b64encode), ("url", base64.urlsafe_b64encode)):
            out[f"{name} base64 {kind}"] = encode(data).decode()
            for shift in range(3):
                out[f"{name} base64 {kind} +{shift}"] = stable_base64(data, shift, encode)
        for number, wrapped in enumerate(base64.encodebytes(data).decode().splitlines()):
            if len(wrapped) >= 4:
                out[f"{name} base64 wrapped line {number}"] = wrapped
        out[f"{name} quote"] = quote(data, safe="")
        out[f"{name} quote /"] = quote(data)
        out[f"{name} quote_plus"] = quote_plus(data)
        out[f"{name} json"] = json.dumps(variant)[1:-1]
        out[f"{name} json utf-8"] = json.dumps(variant, ensure_ascii=False)[1:-1]
    return out


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def views(data: bytes) -> list[str]:
    """The text of an output as a reader could take it: as it is, HTML-unescaped, and every
    string of it when it is JSON (or JSON lines), where escapes would hide a form."""
    text = data.decode("utf-8", "surrogateescape")
    out = [text, html.unescape(text)]
    try:
        out += _strings(json.loads(text))
    except ValueError:
        for line in text.splitlines():
            try:
                out += _strings(json.loads(line))
            except ValueError:
                continue
    return out


def leaks(outputs: dict[str, bytes]) -> list[str]:
    """Which form of which secret appears in which output."""
    found = []
    for where, data in outputs.items():
        seen = views(data)
        for secret, value in SECRETS.items():
            for label, form in forms(value).items():
                if any(form in text for text in seen):
                    found.append(f"{secret}: {label} in {where}")
    return found


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# -- foundry run, traces show and export -----------------------------------------------------


def foundry(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [PY, "-m", "foundry", *args],
        cwd=cwd,
        capture_output=True,
        env={**os.environ, **ENV},
        timeout=120,
        check=False,
    )


def test_reported_a_pem_secret_printed_line_by_line_or_with_crlf_ends_is_masked(
    tmp_path: Path,
) -> None:
    """The case as reported: each line of a PEM-like secret printed on its own, and the whole
    secret printed with CRLF line ends, were left in the log, the ledger and the trace."""
    script = (
        "import os, sys\n"
        "pem = os.environ['SECRET_1']\n"
        "for number, line in enumerate(pem.splitlines()):\n"
        "    print(f'{number}: {line}', flush=True)\n"
        "sys.stdout.write(pem.replace('\\n', '\\r\\n'))\n"
    )
    write_artifact(
        tmp_path,
        artifact_document("pem", [block("print", [PY, "-c", script], secrets=["SECRET_1"])]),
    )
    state = tmp_path / "state"
    ran = foundry("run", ".", "--artifact", "pem", "--state", str(state), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr.decode()
    execution = ran.stderr.decode().split()[0]
    exported = foundry(
        "traces", "export", execution, "--path", str(tmp_path), "--state", str(state), cwd=tmp_path
    )
    [log] = (state / "executions" / execution / "logs").iterdir()
    ledger = (state / "executions" / execution / "ledger.jsonl").read_text()
    tail = json.loads(exported.stdout)["spec"]["blocks"][0]["attempts"][0]["logTail"]
    for where, text in (("log", log.read_text()), ("ledger", ledger), ("trace", tail)):
        for line in PEM.splitlines():
            assert line not in text, f"{line!r} in the {where}"
        assert PEM.replace("\n", "\r\n") not in text
    assert log.read_text() == "".join(f"{n}: ***\n" for n in range(5)) + "***"


def single_line_forms(secret: str) -> list[str]:
    """The forms a policy command can say whole in its reason: one line, and within the 200
    characters of its output that the reason keeps (docs/foundry.md: a longer one is cut before
    it is masked)."""
    said = [f for f in dict.fromkeys(forms(secret).values()) if len(f.splitlines()) == 1]
    return [f for f in said if len("gate saw: " + f) <= 200][:12]


@pytest.mark.parametrize("secret", list(SECRETS))
def test_no_form_of_a_secret_reaches_any_output_of_foundry_run(tmp_path: Path, secret: str) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "leak.py").write_text(LEAK)
    policy = tmp_path / "policy"
    (policy / "forms").mkdir(parents=True)
    (policy / "gate.py").write_text(GATE)
    said = single_line_forms(SECRETS[secret])
    for number, form in enumerate(said):
        (policy / "forms" / str(number)).write_bytes(form.encode())
    gates = [
        {"kind": "command", "run": [PY, "gate.py", str(n)], "timeoutSeconds": 30}
        for n in range(len(said))
    ]
    name = NAMES[secret]
    write_artifact(
        checkout,
        artifact_document(
            "leaky",
            [
                block(
                    "leak",
                    [PY, "leak.py", name],
                    secrets=[name],
                    outputs=["out.txt"],
                    gates=gates,
                ),
                block("again", [PY, "-c", LEAK, name], secrets=[name], needs=["leak"]),
            ],
        ),
    )
    state = tmp_path / "state"
    where = ["--path", str(checkout), "--state", str(state)]
    console: dict[str, bytes] = {}
    ran = foundry(
        "run", ".", "--artifact", "leaky", "--state", str(state), "--policy", str(policy),
        cwd=checkout,
    )  # fmt: skip
    console["run stdout"], console["run stderr"] = ran.stdout, ran.stderr
    assert ran.returncode == 0, ran.stderr.decode()
    execution = ran.stderr.decode().strip().splitlines()[-1].split()[0]
    for fmt in ("json", "markdown", "otlp", "intoto"):
        exported = foundry("traces", "export", execution, "--format", fmt, *where, cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr.decode()
        console[f"export {fmt}"], console[f"export {fmt} stderr"] = exported.stdout, exported.stderr
    shown = foundry("traces", "show", execution, *where, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr.decode()
    console["traces show"], console["traces show stderr"] = shown.stdout, shown.stderr

    written = files(state)
    logs = {k: v for k, v in written.items() if "/logs/" in k}
    assert len(logs) == 2, sorted(written)
    assert leaks({**written, **console}) == []

    # Not vacuous: every form was printed, and each reached the log masked.
    for log in logs.values():
        labelled = [
            line for line in log.decode(errors="replace").splitlines() if line.startswith(LABELS)
        ]
        assert len(labelled) == 3 + 2 * 15, labelled
        assert [line for line in labelled if MASK not in line] == []
    ledger = [json.loads(x) for x in written[f"executions/{execution}/ledger.jsonl"].splitlines()]
    reasons = [r["reason"] for r in ledger if r["type"] == "gate"]
    assert len(reasons) == len(said)
    assert all(r.startswith("policy command passed: gate saw: ") and MASK in r for r in reasons)
    assert MASK in json.loads(console["export json"])["spec"]["blocks"][0]["attempts"][0]["logTail"]
    assert MASK in console["traces show"].decode()


# -- foundry reconcile on a real remote ------------------------------------------------------


def remote_objects(world: World) -> dict[str, bytes]:
    """Every file on the traces branch and the local forge, and every object of the remote."""
    out: dict[str, bytes] = {}
    for ref in ("alloy/traces", "refs/alloy/forge"):
        listed = world.remote("ls-tree", "-r", "--name-only", ref).split()
        for path in listed:
            out[f"{ref}:{path}"] = subprocess.run(
                ["git", "show", f"{ref}:{path}"], cwd=world.bare, capture_output=True, check=True
            ).stdout
    everything = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=world.bare,
        capture_output=True,
        check=True,
    ).stdout
    out["every object of the remote"] = everything
    return out


def test_no_form_of_a_secret_reaches_the_remote_or_the_runner(world: World) -> None:
    world.work.write({"leak.py": LEAK})
    text = intent("leaky", world.mark("leaky"), script=f"{PY} leak.py {' '.join(ENV)}")
    text = text.replace(
        "        outputs: [out.txt]\n",
        f"        outputs: [out.txt]\n        secrets: [{', '.join(ENV)}]\n",
    )
    world.work.write({".alloy/intents/leaky.yaml": text})
    world.merge("add intent leaky")
    world.env.update(ENV)
    run = world.reconcile()
    assert run.code == 0, run.result.err
    execution = only_execution(run)
    on_remote = remote_objects(world)
    traces = {k: v for k, v in on_remote.items() if k.startswith("alloy/traces:")}
    checks = {k: v for k, v in on_remote.items() if k.startswith("refs/alloy/forge:checks/")}
    assert {k.rsplit("/", 1)[1] for k in traces} == {f"{execution}.json", f"{execution}.md"}
    assert len(checks) == 1, sorted(on_remote)
    console = {
        "reconcile stdout": run.result.out.encode(),
        "reconcile stderr": run.result.err.encode(),
    }
    assert leaks({**on_remote, **files(world.state()), **console}) == []

    # Not vacuous: the block's output reached the trace and the check run, masked.
    trace = json.loads(next(v for k, v in traces.items() if k.endswith(".json")))
    assert MASK in trace["spec"]["blocks"][0]["attempts"][0]["logTail"]
    [check] = checks.values()
    assert MASK in json.loads(check)["summary"]


# -- the forms, as Foundry computes them -----------------------------------------------------


def test_the_forms_of_a_one_line_token() -> None:
    # Its base64 (no padding, nothing URL-safe changes), at three alignments; its URL and JSON
    # forms are the token itself.
    assert secret_forms("tok-5c2e9a71") == [
        "dG9rLTVjMmU5YTcx",
        "0b2stNWMyZTlhNz",
        "Rvay01YzJlOWE3M",
        "tok-5c2e9a71",
    ]
    assert FOUNDRY_MASK == MASK


@pytest.mark.parametrize("secret", list(SECRETS))
def test_every_form_listed_is_among_the_forms_foundry_masks(secret: str) -> None:
    computed = set(secret_forms(SECRETS[secret]))
    missing = {label: f for label, f in forms(SECRETS[secret]).items() if f not in computed}
    assert missing == {}
    assert secret_forms(SECRETS[secret]) == sorted(computed, key=lambda f: (-len(f), f))


def test_lines_under_four_characters_are_not_masked_alone() -> None:
    secret = "ab\n  xyz  \nline-three\n"
    masks = Redaction([secret])
    assert masks.mask_text("ab xyz line-three") == "ab xyz ***"
    assert masks.mask_text(secret) == MASK
    assert "ab" not in secret_forms(secret)
    # White space around a line does not count towards its four characters.
    assert "xyz" not in secret_forms(secret)
    assert "  xyz  " not in secret_forms(secret)


def test_line_ends_either_way() -> None:
    lf = "first-line\nsecond-line\n"
    crlf = lf.replace("\n", "\r\n")
    for secret, other in ((lf, crlf), (crlf, lf)):
        masks = Redaction([secret])
        assert masks.mask_text(f"<{other}>") == f"<{MASK}>"
        assert masks.mask_text(f"<{other.strip()}>") == f"<{MASK}>"
        for end in ("\n", "\r\n"):
            printed = "".join(f"> {line}{end}" for line in lf.splitlines())
            assert masks.mask_text(printed) == f"> {MASK}{end}> {MASK}{end}"


@pytest.mark.parametrize("seed", range(20))
def test_base64_at_any_alignment_standard_and_url_safe(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - seeded test data, not a secret
    secret = "".join(rng.choice("abcdefgh+/?~é\n") for _ in range(rng.randint(3, 40)))
    masks = Redaction([secret])
    raw = secret.encode()
    for before in range(6):
        for after in range(3):
            stream = rng.randbytes(before) + raw + rng.randbytes(after)
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(stream).decode()
                masked = masks.mask_text(encoded)
                assert MASK in masked
                # What is left besides the mask is the bytes around it, and at most the two
                # characters at each end that the secret shares with them.
                left = len(masked) - len(MASK)
                assert left <= (before * 8 + 5) // 6 + 1 + (after * 8 + 5) // 6 + 1 + 2
                assert masks.mask_text(encoded.rstrip("=")).count(MASK) == 1


def test_base64_wrapped_at_64_and_76_columns() -> None:
    masks = Redaction([PEM])
    for width in (64, 76):
        full = base64.b64encode(PEM.encode()).decode()
        wrapped = "\n".join(full[i : i + width] for i in range(0, len(full), width))
        assert set(masks.mask_text(wrapped).split("\n")) == {MASK}


def test_url_encoded_forms() -> None:
    secret = "p@ss w/rd+é&?="
    masks = Redaction([secret])
    for encoded in (
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote(secret, safe="").lower(),
        quote(secret, safe="!~*'()"),
    ):
        assert masks.mask_text(f"url?x={encoded}&y=1") == f"url?x={MASK}&y=1", encoded


def test_json_escaped_forms() -> None:
    secret = 'q"u\\o\te\x01\x7fé🔑\nnext'
    masks = Redaction([secret])
    for escaped in (
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        re.sub(
            r"\\u[0-9a-f]{4}",
            lambda m: m.group(0).upper().replace("\\U", "\\u"),
            json.dumps(secret)[1:-1],
        ),
    ):
        document = '{"log": "before ' + escaped + ' after"}'
        assert masks.mask_text(document) == '{"log": "before *** after"}', escaped
    assert "\\u0001" in json.dumps(secret)  # control characters are \u00xx escapes


def test_overlapping_occurrences_are_masked_whole() -> None:
    masks = Redaction(["abcabc", "cab-line"])
    assert masks.mask_text("xabcabcabcy") == f"x{MASK}y"
    assert masks.mask_text("abcabcab-line") == MASK  # "abcabc", and "cab-line" in its end


def test_values_that_are_no_secret() -> None:
    assert secret_forms("") == []
    assert secret_forms(" \n\t ") == []
    assert not Redaction(["", "  "])
    assert Redaction([]).mask_text("anything") == "anything"
    # The value itself is masked whatever its length; other forms need four characters.
    assert Redaction(["ab"]).mask_text("cabs") == f"c{MASK}s"


def test_documents_lone_strings_and_the_cache() -> None:
    secret = "doc-secret-1\ndoc-secret-2"
    document = {"a": [secret, {"b-key": "x " + base64.b64encode(secret.encode()).decode()}], "n": 3}
    assert redact(document, [secret]) == {"a": [MASK, {"b-key": f"x {MASK}"}], "n": 3}
    assert redact_text("line doc-secret-2", secret) == f"line {MASK}"  # one secret, not letters
    assert redaction([secret, secret, ""]) is redaction([secret])


def test_a_value_that_is_not_utf8_is_masked_as_the_bytes_it_was() -> None:
    secret = os.fsdecode(b"\xff\xfebinary-token")  # how the environment hands it over
    stream = Redactor([secret])
    out = stream.feed(b"<\xff\xfebinary-token>") + stream.flush()
    assert out == b"<***>"


# -- the streaming redactor ------------------------------------------------------------------


def printed(secret: str) -> bytes:
    """What the block of the tests above prints for `secret` (every form, between text)."""
    done = subprocess.run(
        [PY, "-c", LEAK, "S"],
        env={**os.environ, "S": secret},
        capture_output=True,
        check=True,
        cwd=os.environ.get("TMPDIR", "/tmp"),
    )
    return done.stdout


@pytest.mark.parametrize("secret", list(SECRETS))
def test_the_stream_fed_byte_by_byte_is_masked_as_a_whole(secret: str) -> None:
    masks = Redaction(SECRETS.values())
    data = printed(SECRETS[secret])
    whole = masks.mask_bytes(data)
    stream = masks.stream()
    out = b"".join(stream.feed(data[i : i + 1]) for i in range(len(data))) + stream.flush()
    assert out == whole
    assert leaks({"the stream": out}) == []
    assert out.count(MASK.encode()) >= 33


def test_the_stream_in_chunks_of_every_size() -> None:
    masks = Redaction(SECRETS.values())
    data = b"".join(printed(secret) for secret in SECRETS.values()) * 3
    whole = masks.mask_bytes(data)
    rng = random.Random(5)  # noqa: S311 - seeded chunk sizes, not a secret
    for _ in range(30):
        stream = masks.stream()
        out, at = [], 0
        while at < len(data):
            size = rng.choice([1, 2, 3, 7, 100, 351, 352, 353, 4096, 65536])
            out.append(stream.feed(data[at : at + size]))
            at += size
        out.append(stream.flush())
        assert b"".join(out) == whole


def test_a_stream_without_secrets_passes_everything_on_at_once() -> None:
    stream = Redactor([])
    assert stream.feed(b"abc") == b"abc"
    assert stream.flush() == b""


def test_only_foundry_redaction_masks() -> None:
    """No writer has its own idea of redaction: the mask appears in no other module (the
    daemon's rule for URL user information aside, which is not about secret values). The
    adapters an import contract keeps free of Foundry (for `alloy ui`) cannot use it: they mask
    only the credentials of their own remote or token in their own error messages."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    foundry_free = {
        root / (module.replace(".", "/") + ".py")
        for contract in contracts["contracts"]
        if contract.get("forbidden_modules") == ["foundry"]
        for module in contract["source_modules"]
    }
    assert foundry_free, "the contract that keeps alloy ui's adapters free of Foundry is gone"
    others = [
        str(path.relative_to(root))
        for path in sorted([*root.glob("foundry/**/*.py"), *root.glob("controllers/**/*.py")])
        if path != root / "foundry" / "redaction.py"
        and path not in foundry_free
        and ('"***"' in path.read_text() or 'b"***"' in path.read_text())
    ]
    assert others == []
