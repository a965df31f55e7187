"""docs/packed-format.md section 8 states the ONNX graph's input contract with an onnxruntime
example: the example is taken from the doc and run as written on a real test image, so the
doc cannot drift from the graph."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers_export import trained_looking_wrn
from PIL import Image

from binwrn.data import load_splits
from binwrn.export.format import decode, encode
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.onnx_export import save_onnx, to_onnx
from binwrn.export.pack import pack_wrn

DOC = Path(__file__).resolve().parents[1] / "docs" / "packed-format.md"


def onnx_example() -> str:
    section = DOC.read_text().split("## 8. The ONNX file", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_docs_onnx_example_runs_as_written(tmp_path: Path):
    code = onnx_example()
    assert len(code.strip().splitlines()) <= 10
    model, kwargs = trained_looking_wrn(seed=3)
    packed = decode(encode(pack_wrn(model, kwargs))[0])
    save_onnx(to_onnx(packed), tmp_path / "wrn.onnx")
    _, test = load_splits("digits", None, 10, test_limit=20)
    expected = NumpyWRN(packed).logits(test.model_inputs()).argmax(axis=1)
    other = int(next(i for i, c in enumerate(expected) if c != expected[0]))
    for i in (0, other):  # two real digits with different answers, so the print is checked
        Image.fromarray(test.images[i]).save(tmp_path / "image.png")
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == f"class {expected[i]}"
