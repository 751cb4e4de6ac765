"""Help: the user guide (docs/app.md), keyboard shortcuts, what the demo model understands,
About, and the first-run hint.

Dialogs are non-modal and kept in ``window.help_dialogs[name]`` (one of each), so the window
stays usable beside them and tests can read what they show.
"""

from __future__ import annotations

import html
import importlib.metadata
import re
import sys
from pathlib import Path

from PyQt6.QtCore import PYQT_VERSION_STR, QT_VERSION_STR, QUrl
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QToolBar,
    QVBoxLayout,
)

from cds_desktop import logs
from cds_desktop.demo.world import COLOURS, SHAPES

from . import model_choice
from .widgets.mask_tools import TOOLS

GUIDE = Path("docs") / "app.md"


def version() -> str:
    try:
        return importlib.metadata.version("cds-desktop")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed as a package)"


def guide_path() -> Path | None:
    """docs/app.md from the source tree, or from the bundle's folder."""
    roots = [Path(__file__).resolve().parents[2]]
    if getattr(sys, "_MEIPASS", None):
        roots.insert(0, Path(sys._MEIPASS))
    for root in roots:
        if (root / GUIDE).is_file():
            return root / GUIDE
    return None


def _dialog(window, name: str, title: str) -> tuple[QDialog, QTextBrowser]:
    dialogs = window.__dict__.setdefault("help_dialogs", {})
    dialog = dialogs.get(name)
    if dialog is None:
        dialog = QDialog(window)
        dialog.setObjectName(f"help-{name}")
        dialog.setWindowTitle(title)
        browser = QTextBrowser(dialog)
        browser.setOpenExternalLinks(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dialog)
        buttons.rejected.connect(dialog.close)
        layout = QVBoxLayout(dialog)
        layout.addWidget(browser)
        layout.addWidget(buttons)
        dialog.browser = browser
        dialogs[name] = dialog
    return dialog, dialog.browser


def _present(dialog: QDialog, size: tuple[int, int]) -> QDialog:
    if not dialog.isVisible():
        dialog.resize(*size)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def show_guide(window) -> QDialog:
    dialog, browser = _dialog(window, "guide", "cds-desktop user guide")
    path = guide_path()
    if path is None:
        browser.setHtml(
            "<p>The user guide (<code>docs/app.md</code>) is not installed with this copy of "
            "the app. It is in the <code>docs</code> folder of the source repository.</p>"
        )
    else:
        browser.setSearchPaths([str(path.parent)])
        browser.setSource(QUrl.fromLocalFile(str(path)))
    return _present(dialog, (760, 640))


def shortcut_rows(window) -> list[tuple[str, str]]:
    """(what, keys) for every menu action with a shortcut, the tools and the canvas keys."""
    rows = []
    fixed = {"undo": "Undo", "redo": "Redo"}  # their menu text names the step
    for name, action in window.actions.items():
        if name == "cancel_on_canvas":  # shown as the menu's "Cancel edit ... Esc (canvas)"
            continue
        text = fixed.get(name) or action.text().replace("&", "")
        keys = ", ".join(
            k.toString(k.SequenceFormat.NativeText) for k in action.shortcuts() if _typable(k)
        )
        if "\t" in text:  # "Cancel edit\tEsc": the menu shows a key the canvas owns
            text, keys = text.split("\t", 1)
            keys += " (canvas)"
        if keys:
            rows.append((text, keys))
    rows += [(f"{text} tool", key) for _name, text, key, _tip in TOOLS]
    rows += [
        ("Brush size smaller / larger", "[ / ]"),
        ("Pan while held", "Space + drag, or the middle button"),
        ("Zoom around the cursor", "mouse wheel"),
        ("Add to / subtract from a Rect or Ellipse", "drag / Alt + drag"),
    ]
    return rows


def _typable(key) -> bool:
    """Keys on an ordinary keyboard (not the Undo/Redo/F14 keys some platforms also bind)."""
    text = key.toString()
    return bool(
        "+" in text or len(text) == 1 or text == "Esc" or re.fullmatch(r"F([1-9]|1[0-2])", text)
    )


def show_shortcuts(window) -> QDialog:
    dialog, browser = _dialog(window, "shortcuts", "Keyboard shortcuts")
    cells = "".join(
        f"<tr><td>{html.escape(what)}</td><td><b>{html.escape(keys)}</b></td></tr>"
        for what, keys in shortcut_rows(window)
    )
    browser.setHtml(
        "<p>Tool keys and Esc act on the canvas; while you type in a text field the keys "
        "go to the field.</p>"
        f"<table cellpadding='3'>{cells}</table>"
    )
    return _present(dialog, (520, 600))


def demo_prompts() -> list[str]:
    return [f"a {colour} {shape}" for colour in COLOURS for shape in SHAPES]


def show_demo_prompts(window) -> QDialog:
    dialog, browser = _dialog(window, "demo", "What the demo model understands")
    current = window.prompt.model_spec
    note = (
        ""
        if current == model_choice.DEMO
        else f"<p><i>The current model is {html.escape(model_choice.label(current))}; this page "
        "is about the shapes-demo model.</i></p>"
    )
    prompts = "".join(f"<li>{p}</li>" for p in demo_prompts())
    browser.setHtml(
        f"{note}<p>The <b>shapes-demo</b> model ships with the app so that everything works "
        "without downloading a real model. It knows one small world: 64&times;64 images of "
        "<b>one coloured shape on a light background</b>, described as "
        "<code>a {colour} {shape}</code>.</p>"
        f"<p>Colours: <b>{', '.join(COLOURS)}</b>. Shapes: <b>{', '.join(SHAPES)}</b>. "
        "Other words are unknown to it and are ignored or give noise.</p>"
        "<p>Try: source prompt <code>a red circle</code>, target prompt "
        "<code>a blue circle</code> on <code>resources/samples/red_circle.png</code>; "
        "change the colour, the shape, or both.</p>"
        f"<p>All {len(COLOURS) * len(SHAPES)} prompts it understands:</p><ul>{prompts}</ul>"
    )
    return _present(dialog, (480, 560))


def about_text(window) -> str:
    device = window.device_in_use or window.prefs.device
    log_file = logs.log_file()
    return (
        f"<h3>cds-desktop {html.escape(version())}</h3>"
        "<p>Local image editing with Contrastive Denoising Score on Stable Diffusion.</p>"
        f"<p>Model: {html.escape(window.model_label_text)}<br>"
        f"Device: {html.escape(device)}"
        f"{'' if window.device_in_use else ' (as set in the preferences; no edit ran yet)'}"
        f"<br>Log file: {html.escape(str(log_file) if log_file else 'none (terminal only)')}"
        f"<br>Qt {QT_VERSION_STR}, PyQt {PYQT_VERSION_STR}, Python {sys.version.split()[0]}</p>"
    )


def show_about(window) -> QDialog:
    dialog, browser = _dialog(window, "about", "About cds-desktop")
    browser.setHtml(about_text(window))
    return _present(dialog, (520, 300))


# ----------------------------------------------------------------------------- first run
HINT = (
    "New here? Open an image (Ctrl+O), paint over what to change, describe what it shows "
    "and what it should become, then press Edit (Ctrl+Return)."
)


def add_first_run_hint(window) -> QToolBar | None:
    """A bar under the menus until the user dismisses it (remembered in the preferences)."""
    window.first_run_hint = None
    if window.prefs.hint_dismissed:
        return None
    bar = QToolBar("Getting started", window)
    bar.setObjectName("toolbar-first-run")
    bar.setMovable(False)
    label = QLabel(HINT, bar)
    label.setContentsMargins(6, 2, 6, 2)
    label.setToolTip(HINT)
    # a narrow window cuts the line instead of growing to fit it
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(120)
    bar.addWidget(label)
    for text, slot in (
        ("Demo model prompts", lambda: show_demo_prompts(window)),
        ("User guide", lambda: show_guide(window)),
    ):
        button = QPushButton(text, bar)
        button.clicked.connect(slot)
        bar.addWidget(button)
    dismiss = QPushButton("Got it", bar)
    dismiss.setToolTip("Hide this hint for good (Help has the same pages)")
    bar.addWidget(dismiss)

    def close() -> None:
        window.prefs.hint_dismissed = True
        window.removeToolBar(bar)
        bar.deleteLater()
        window.first_run_hint = None

    dismiss.clicked.connect(close)
    bar.dismiss = dismiss
    window.addToolBar(bar)
    window.insertToolBarBreak(bar)
    window.first_run_hint = bar
    return bar
