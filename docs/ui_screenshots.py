"""Screenshots of the MLflow UI that `make ui` serves, taken by headless Chromium (docs/ui.md).

Chromium is driven over its DevTools protocol, so the screenshot of the runs table can show
docs/tracking.md's clicks (Columns -> `test/error_pct`, `model.bits`) and not only a page as it
loads; the other views are plain links.

    uv run python docs/ui_screenshots.py STORE URL OUT
    # e.g. uv run python docs/ui_screenshots.py mlflow.db http://127.0.0.1:5000 docs/ui
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from mlflow import MlflowClient
from PIL import Image

SIZE = (1400, 900)
SETTLE_S = 25  # the UI's first paint and its API calls, on a loaded 2-core machine
CLICK = """((text) => {  // in the open dropdown first (Columns' list), else on the page
  const find = root => [...root.querySelectorAll('button, label, span, div')].find(
    e => e.offsetParent !== null && e.children.length <= 3 && e.innerText?.trim() === text);
  const dialog = document.querySelector('[role=dialog]');
  const found = (dialog && find(dialog)) || find(document);
  if (!found) throw new Error('no ' + text);
  found.click();
})"""


class Tab:
    def __init__(self, ws) -> None:
        self.ws, self.calls = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.calls += 1
        await self.ws.send_str(json.dumps({"id": self.calls, "method": method,
                                           "params": params}))
        while True:
            message = json.loads((await self.ws.receive()).data)
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await asyncio.sleep(SETTLE_S)

    async def click(self, *texts: str) -> None:
        for text in texts:
            result = await self.call("Runtime.evaluate", expression=f"{CLICK}({text!r})")
            if "exceptionDetails" in result:
                raise RuntimeError(f"cannot click {text!r} on the page")
            await asyncio.sleep(2)

    async def shot(self, path: Path) -> None:
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        path.write_bytes(base64.b64decode(data))
        Image.open(path).quantize(colors=64).save(path, optimize=True)  # small for the repo
        print(f"{path} ({path.stat().st_size:,} bytes)")


@asynccontextmanager
async def new_tab(port: int):
    """A 1400x900 tab of the Chromium listening on `port`."""
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as answer:
            target = await answer.json()
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tab = Tab(ws)
            await tab.call("Emulation.setDeviceMetricsOverride", width=SIZE[0], height=SIZE[1],
                           deviceScaleFactor=1, mobile=False)
            yield tab


async def close_assistant(tab: Tab) -> None:
    await tab.call("Runtime.evaluate", expression=(
        "document.querySelector('button[aria-label=Close]')?.click()"))  # the MLflow Assistant


async def take(port: int, url: str, out: Path, store: Path) -> None:
    client = MlflowClient(f"sqlite:///{store.resolve()}")
    experiment = client.get_experiment_by_name("binwrn").experiment_id
    (model,) = client.search_registered_models(max_results=1)
    version = model.latest_versions[0]
    runs = f"{url}/#/experiments/{experiment}/runs?workflowType=machine_learning"
    async with new_tab(port) as tab:
        await tab.open(runs)
        await close_assistant(tab)
        await tab.click("Columns", "Dataset", "Source", "test/error_pct", "model.bits",
                        "Columns")
        await tab.shot(out / "runs-table.png")
        await tab.open(runs + "&compareRunsMode=CHART")
        await tab.shot(out / "runs-charts.png")
        await tab.open(f"{url}/#/experiments/{experiment}/runs/{version.run_id}/"
                       "model-metrics")
        await tab.shot(out / "run-charts.png")
        await tab.open(f"{url}/#/models/{model.name}/versions/{version.version}")
        await tab.shot(out / "registered-model.png")


def main(take=take) -> None:
    """`take(port, url, out, store)`: the screenshots, in the Chromium started here."""
    store, url, out = Path(sys.argv[1]), sys.argv[2].rstrip("/"), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as profile:
        chromium = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", f"--user-data-dir={profile}",
             f"--window-size={SIZE[0]},{SIZE[1]}", f"--remote-debugging-port={port}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(5)
            asyncio.run(take(port, url, out, store))
        finally:
            chromium.terminate()
            chromium.wait(timeout=30)


if __name__ == "__main__":
    main()
