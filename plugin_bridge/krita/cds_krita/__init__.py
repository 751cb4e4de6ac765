"""CDS Edit for Krita: edit the active layer with Contrastive Denoising Score via cds-desktop.

Krita imports this package when the plug-in is enabled (Settings > Configure Krita > Python
Plugin Manager). Outside Krita (tests, kritarunner scripts) the pure modules import fine and
nothing is registered.
"""

try:
    import krita
except ImportError:  # not running inside Krita
    krita = None

if krita is not None and hasattr(krita, "DockWidgetFactory"):
    from .docker import register

    register(krita.Krita.instance())
