"""EditSettings: every algorithm knob of a CDS/DDS edit, with the published defaults.

Defaults follow the published CDS code (Nam et al., CVPR 2024): 200 SGD steps at lr 0.1,
t ~ U{50..948}, classifier-free guidance 7.5 on both branches, w_dds 1, w_cut 3 (SD-1.x),
PatchNCE with tau 0.07 over patch sizes (1, 2) and 256 positions per layer.

``w_cut`` and ``working_size`` may be left ``None``: they then come from the loaded model
(its recommended w_cut and native resolution), see :meth:`EditSettings.resolved`. Knobs with a
plain default that a model family changes (``guidance_scale``: 5 for SDXL) are filled from the
loaded model by :meth:`EditSettings.with_model_defaults` when the user did not choose them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .errors import EditError

MODES = ("cds", "dds")
DDS_SCALES = ("per_element", "published")
#: The published DDS gradient scale: 2000 / (h*w) at a 64x64 latent.
DDS_REFERENCE_ELEMENTS = 64 * 64
DDS_GAIN = 2000.0
DEFAULT_W_CUT_SD = 3.0
#: knobs a model may recommend (LoadedModel.recommended) that have a plain default here: a
#: caller that leaves one unset lets the loaded model's value apply (with_model_defaults)
MODEL_DEFAULTS = ("guidance_scale",)


@dataclass(frozen=True)
class EditSettings:
    mode: str = "cds"
    steps: int = 200
    lr: float = 0.1
    guidance_scale: float = 7.5
    w_dds: float = 1.0
    w_cut: float | None = None
    tau: float = 0.07
    patch_sizes: tuple[int, ...] = (1, 2)
    n_patches: int = 256
    t_range: tuple[int, int] = (50, 948)
    seed: int = 0
    working_size: int | None = None
    #: "per_element": 2000*w_dds/4096 at every latent size (default, see docs/design.md);
    #: "published": 2000*w_dds/(h*w), the published mean-normalisation.
    dds_scale: str = "per_element"
    preview_every: int = 25
    #: margin around the mask's bounding box, as a fraction of the box's long side
    crop_margin: float = 0.25
    #: feather radius of the composite, in pixels of the original image (inside the mask only)
    feather: float = 4.0
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_sizes", tuple(int(p) for p in self.patch_sizes))
        object.__setattr__(self, "t_range", tuple(int(t) for t in self.t_range))
        self.validate()

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        _choice("mode", self.mode, MODES)
        _choice("dds_scale", self.dds_scale, DDS_SCALES)
        _int_range("steps", self.steps, 1, 100_000)
        _float_range("lr", self.lr, 0.0, 1e3, low_open=True)
        _float_range("guidance_scale", self.guidance_scale, 0.0, 100.0)
        _float_range("w_dds", self.w_dds, 0.0, 1e6)
        if self.w_cut is not None:
            _float_range("w_cut", self.w_cut, 0.0, 1e6)
        _float_range("tau", self.tau, 0.0, 10.0, low_open=True)
        if not self.patch_sizes or any(p < 1 or p > 64 for p in self.patch_sizes):
            raise EditError(
                f"patch_sizes={self.patch_sizes!r}: expected a non-empty tuple of ints in 1..64"
            )
        _int_range("n_patches", self.n_patches, 1, 1_000_000)
        lo, hi = self.t_range if len(self.t_range) == 2 else (-1, -1)
        if len(self.t_range) != 2 or not (0 <= lo <= hi <= 999):
            raise EditError(
                f"t_range={self.t_range!r}: expected (lo, hi) with 0 <= lo <= hi <= 999"
            )
        _int_range("seed", self.seed, 0, 2**63 - 1)
        if self.working_size is not None:
            _int_range("working_size", self.working_size, 16, 4096)
        _int_range("preview_every", self.preview_every, 0, 100_000)
        _float_range("crop_margin", self.crop_margin, 0.0, 4.0)
        _float_range("feather", self.feather, 0.0, 256.0)

    # ----------------------------------------------------------------- derived
    @property
    def effective_w_cut(self) -> float:
        """The CUT weight actually used: 0 in DDS mode, else w_cut (SD default 3.0)."""
        if self.mode == "dds":
            return 0.0
        return DEFAULT_W_CUT_SD if self.w_cut is None else float(self.w_cut)

    def dds_gain(self, latent_h: int, latent_w: int) -> float:
        """Scale of the DDS gradient per latent element (2000*w_dds/4096 by default)."""
        elements = (
            DDS_REFERENCE_ELEMENTS if self.dds_scale == "per_element" else latent_h * latent_w
        )
        return DDS_GAIN * self.w_dds / elements

    def replace(self, **changes) -> EditSettings:
        return dataclasses.replace(self, **changes)

    def resolved(self, w_cut: float | None = None, working_size: int | None = None) -> EditSettings:
        """Fill the model-dependent knobs left as None with the model's defaults."""
        changes = {}
        if self.w_cut is None and w_cut is not None:
            changes["w_cut"] = float(w_cut)
        if self.working_size is None and working_size is not None:
            changes["working_size"] = int(working_size)
        return self.replace(**changes) if changes else self

    def with_model_defaults(self, recommended: dict, unset) -> EditSettings:
        """These settings with each knob named in ``unset`` (one the user did not choose,
        among MODEL_DEFAULTS) taken from the model's ``recommended`` values where it has one."""
        changes = {
            name: recommended[name]
            for name in unset
            if name in MODEL_DEFAULTS and recommended.get(name) is not None
        }
        return self.replace(**changes) if changes else self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra")
        d["patch_sizes"] = list(self.patch_sizes)
        d["t_range"] = list(self.t_range)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> EditSettings:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = set(data) - names
        if unknown:
            raise EditError(
                f"unknown setting(s) {sorted(unknown)}; expected some of {sorted(names)}"
            )
        values = dict(data)
        for key in ("patch_sizes", "t_range"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise EditError(f"bad settings: {exc}") from None


def _choice(name: str, value, options) -> None:
    if value not in options:
        raise EditError(f"{name}={value!r}: expected one of {', '.join(map(repr, options))}")


def _int_range(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise EditError(f"{name}={value!r}: expected an integer in {lo}..{hi}")


def _float_range(name: str, value, lo: float, hi: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if low_open else value >= lo) and value <= hi
    if not ok:
        bound = f"({lo}, {hi}]" if low_open else f"[{lo}, {hi}]"
        raise EditError(f"{name}={value!r}: expected a finite number in {bound}")
