"""The README's picture of the report: its recommendation and policy section, rendered by headless Chromium.

    python benchmarks/screenshot_report.py --audit runs/audit --out docs/report.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def policy_page(html: str) -> str:
    """The report's <head> (its styles) and body cut to the recommendation and the policy section."""
    head = html[: html.index("<body")]
    start = html.index("<h2>Policies")
    end = html.index("<h2>", start + 4)
    marker = "<div class='verdict'>"
    top = html[html.index(marker): html.index("</div>", html.index(marker)) + 6] if marker in html else ""
    return head + "<body>" + top + html[start:end] + "</body></html>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", default="runs/audit")
    parser.add_argument("--out", default="docs/report.png")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs Chromium (apt-get install chromium)")
    html = (Path(args.audit) / "report.html").read_text()
    with tempfile.TemporaryDirectory() as work:
        page = Path(work) / "policies.html"
        page.write_text(policy_page(html))
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--no-first-run", f"--user-data-dir={work}/profile",
                        "--hide-scrollbars", "--window-size=1400,1500", f"--screenshot={Path(args.out).resolve()}",
                        page.as_uri()], check=True, capture_output=True, timeout=120)
    print(args.out)


if __name__ == "__main__":
    main()
