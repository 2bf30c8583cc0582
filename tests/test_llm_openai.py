"""The openai-compatible backend against a real ``python -m llama_cpp.server`` with SmolLM2."""

import socket
import subprocess
import sys
import threading
import time

import pytest
from agents_fixtures import CYCLING, llm_reasoner, store_model, timeline

from vidsense.agents.labels import load_labels
from vidsense.agents.llm import load_llm
from vidsense.agents.openai_backend import OpenAICompatibleModel
from vidsense.agents.reasoner import ReasonerConfig
from vidsense.services.errors import ProcessingError
from vidsense.services.settings import load_settings

pytest.importorskip("llama_cpp.server.app", reason="llama_cpp.server needs fastapi, sse-starlette, starlette-context")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(store_model("smollm2-135m")), "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "2048"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_chat_generation_and_token_counts(server):
    m = OpenAICompatibleModel(server, "smollm2", n_ctx=2048, timeout_s=120)
    msgs = [{"role": "system", "content": "Answer with one word."}, {"role": "user", "content": "Which vehicle has pedals?"}]
    assert isinstance(m.generate(msgs, max_tokens=8), str)
    assert m.generate(msgs, max_tokens=8, grammar='root ::= "bicycle" | "car"') in {"bicycle", "car"}
    assert 10 < m.count_tokens(m.render_chat(msgs)) < 60  # counted by the server's tokenizer


@pytest.mark.slow
def test_reasoner_through_the_server(server):
    settings = load_settings(llm_backend="openai-compatible", llm_base_url=server, llm_model="smollm2", llm_n_ctx=2048, llm_timeout_s=120)
    # The settings reach the backend the way the Pipeline passes them.
    llm = load_llm(ReasonerConfig.from_settings(settings).llm, settings.model_env())
    assert isinstance(llm, OpenAICompatibleModel) and llm.n_ctx == 2048
    ls = load_labels(["riding a bike", "swimming", "archery"])
    pred = llm_reasoner(llm).classify(timeline(CYCLING), ls)
    assert pred.label in ls.labels
    assert abs(sum(c.score for c in pred.candidates) - 1.0) < 1e-3
    # llama-cpp-python's server shifts echoed prompt log-probs by one token, so the probe
    # must reject them and scoring falls back to constrained generation.
    assert llm._echo_ok is False


def test_server_down_is_a_clear_error_after_retries():
    m = OpenAICompatibleModel(f"http://127.0.0.1:{_free_port()}/v1", "x", timeout_s=2, retries=1)
    with pytest.raises(ProcessingError, match="is not reachable after"):
        m.generate([{"role": "user", "content": "hi"}])
    with pytest.raises(ProcessingError, match="is not reachable after"):
        m.score("hi", ["a", "b"])


def test_server_that_never_answers_times_out():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()
    held = []

    def accept_and_hang():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept_and_hang, daemon=True)
    t.start()
    try:
        m = OpenAICompatibleModel(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", "x", timeout_s=0.5, retries=1)
        t0 = time.perf_counter()
        with pytest.raises(ProcessingError, match="timed out"):
            m.generate([{"role": "user", "content": "hi"}])
        assert time.perf_counter() - t0 < 20
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        sock.close()
