"""Size report in the style of Larq's model summary, and the closing tables of the two tools.

Per conv layer: weights, bits per weight, packed bytes and fp32 bytes; totals with the
compression ratio; then where the `.bwn` file's bytes go (paper-spec 1.7: one bit per binary
weight, BN moments as a float side-car).
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from binwrn.export.format import FileLayout
from binwrn.models import SizeSummary

console = Console()


def _layout_rows(layout: FileLayout) -> list[tuple[str, int]]:
    return [("1-bit weights (sign bits)", layout.sign_bits),
            ("float32 side-car (BN moments, affine, fp32 convs)", layout.float32),
            ("signature, version and JSON header", layout.prefix_and_header),
            ("alignment padding", layout.padding), ("SHA-256 checksum", layout.checksum),
            ("whole .bwn file", layout.total)]


FILE_NOTES = {"ONNX": "standard ONNX, weights expanded to +/-alpha float32",
              "QONNX": "BipolarQuant(+/-1 float32 signs, alpha) per 1-bit conv"}


def size_report_markdown(summary: SizeSummary, layout: FileLayout | None,
                         files: dict[str, int] | None = None) -> str:
    """The report; `files`: the graph files exported beside the .bwn (kind -> bytes)."""
    text = "# Size report\n\n" + summary.as_markdown()
    if layout is not None:
        text += "\n| .bwn file part | bytes |\n|---|---|\n"
        text += "".join(f"| {name} | {n:,} |\n" for name, n in _layout_rows(layout))
    if files:
        text += "\n| exported file | bytes |\n|---|---|\n"
        text += "".join(f"| {kind} ({FILE_NOTES[kind]}) | {n:,} |\n"
                        for kind, n in files.items())
    return text


def show_size_report(summary: SizeSummary, layout: FileLayout | None, title: str) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("layer", "shape", "weights", "bits", "packed bytes", "fp32 bytes"):
        table.add_column(column, justify="left" if column in ("layer", "shape") else "right",
                         no_wrap=True)
    for x in summary.layers:
        table.add_row(x.name, "x".join(map(str, x.shape)), f"{x.weights:,}", str(x.bits),
                      f"{x.packed_bytes:,}", f"{x.fp32_bytes:,}")
    table.add_section()
    table.add_row("total", "", f"{summary.conv_weights:,}", "", f"{summary.packed_bytes:,}",
                  f"{summary.fp32_bytes:,}", style="bold")
    console.print(table)
    console.print(f"compression x{summary.compression:.2f} (fp32 bytes / packed bytes); BN "
                  f"side-car {summary.sidecar_floats:,} floats ({summary.sidecar_bytes:,} bytes)")
    if summary.pending_layers:
        console.print(summary.pending_note(), soft_wrap=True)
    if layout is not None:
        parts = Table(show_header=False)
        parts.add_column(style="bold")
        parts.add_column(justify="right")
        for name, n in _layout_rows(layout):
            parts.add_row(name, f"{n:,}")
        console.print(parts)


def show_export(result) -> None:
    """What binwrn-export did, after the size table (result: job.ExportResult)."""
    checks = ", ".join(f"{k} max |diff| {v:.3g}" for k, v in result.checks.items())
    console.print(f"self-check on {result.check_images} test images: logits equal the trained "
                  f"model's in eval mode ({checks})")
    if result.zero_weights:
        console.print(f"note: {result.zero_weights} latent weights were exactly 0 and are "
                      "stored as +1")
    if result.out:
        console.print(f"wrote [bold]{result.out}[/] ({result.layout.total:,} bytes)")
    if result.onnx:
        console.print(f"wrote [bold]{result.onnx}[/] ({result.onnx_bytes:,} bytes, weights "
                      "expanded to +/-alpha float32)")
    if result.qonnx:
        console.print(f"wrote [bold]{result.qonnx}[/] ({result.qonnx_bytes:,} bytes, QONNX: "
                      f"{result.qonnx_binary} BipolarQuant weights, qonnx datatype BIPOLAR; "
                      "checked by qonnx's cleanup, inference and executor)", soft_wrap=True)
    if result.report:
        console.print(f"wrote {result.report}")
    if result.logged_on:
        console.print(f"logged model/* size tags and export/ artifacts on run {result.logged_on}")


def show_evaluation(result: dict) -> None:
    table = Table(title=f"binwrn-eval: {result['file']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [("runtime", result["runtime"]), ("data set", result["dataset"]),
            ("test images", f"{result['images']:,}"), ("correct", f"{result['correct']:,}"),
            ("test/acc", f"{result['acc']:.6f}"), ("test error", f"{result['error_pct']:.2f} %")]
    if result.get("recorded_acc") is not None:
        same = "equal" if result["equals_recorded"] else "DIFFERENT"
        rows.append(("run's test/acc", f"{result['recorded_acc']:.6f} ({same})"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def show_registered(registered) -> None:
    """What binwrn-export --register did (registered: mlflow_model.Registered)."""
    served = registered.served_bytes
    console.print(f"registered [bold]{registered.name}[/] version {registered.version}"
                  + (f" (alias {registered.alias})" if registered.alias else "")
                  + f": logged model {registered.model_uri} on the run")
    loaded = sum(v for k, v in served.items() if k != "qonnx")
    console.print(f"served model {loaded:,} bytes: .bwn {served['bwn']:,}, "
                  f"pyfunc wrapper {served['wrapper']:,}, input example "
                  f"{served['input_example']:,}")
    if registered.qonnx_file:
        console.print(f"QONNX file logged on the version beside the .bwn: "
                      f"{registered.qonnx_file} ({served['qonnx']:,} bytes; version tag "
                      "binwrn.qonnx_file)", soft_wrap=True)
    if registered.onnx_uri:
        console.print(f"ONNX model logged beside it: {registered.onnx_uri}")
    console.print(f"serve it: mlflow models serve -m {registered.registry_uri} "
                  "--env-manager local --port 5001", soft_wrap=True)
