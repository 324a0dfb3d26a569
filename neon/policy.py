"""The placement vocabulary: label expressions, taints and tolerations,
affinity, topology spread, capabilities. Parsing and the pure predicates the
placement filters and scorers share.

In a manifest, per component::

    placement:
      nodeSelector: {tier: edge}                      # shorthand for In with one value
      required:                                       # every expression must hold
        - {key: zone, operator: In, values: [factory-a, factory-b]}
        - {key: gpu, operator: DoesNotExist}
      preferred:                                      # weight 1..100 each
        - {weight: 60, key: site, operator: In, values: [plant-3]}
      tolerations:                                    # nodes tainted key=value:Effect repel others
        - {key: dedicated, operator: Equal, value: edge, effect: NoSchedule}
        # stay on a node that lost its lease (Unreachable) for up to 300 s before being
        # rescheduled; without this toleration a component moves as soon as the lease is gone,
        # without tolerationSeconds it waits for the node however long it takes
        - {key: node.neon-grid.dev/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
      affinity:                                       # run on a node that runs these components
        - {component: processor}                      # required (default) ...
        - {component: archiver, type: preferred, weight: 30}
      antiAffinity:                                   # ... or never/rather not with these
        - {component: ingestor}
      spread: {topologyKey: zone, maxSkew: 1, whenUnsatisfiable: DoNotSchedule}
      capabilities: [volumes]                         # the node must offer these
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from neon._validate import dns_name, list_field, mapping
from neon.errors import InvalidManifest

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
EFFECTS = ("NoSchedule", "PreferNoSchedule")  # what an agent's --taint may say
NO_EXECUTE = "NoExecute"  # the control plane's own taint of an unreachable node: running components leave
UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
COLOCATE = ("required", "preferred", "never")
LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
CAPABILITY = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class LabelExpr:
    """``key operator values`` over a node's labels."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def why_not(self, labels: dict[str, str]) -> str | None:
        """None when the labels satisfy the expression, else a short reason."""
        have = labels.get(self.key)
        if self.operator == "Exists":
            return None if have is not None else f"no label {self.key}"
        if self.operator == "DoesNotExist":
            return None if have is None else f"has label {self.key}"
        if self.operator == "In":
            if have is None:
                return f"no label {self.key}"
            return None if have in self.values else f"{self.key}!={'|'.join(self.values)}"
        return None if have not in self.values else f"{self.key}={have}"  # NotIn


@dataclass(frozen=True)
class PreferredTerm:
    weight: int
    expr: LabelExpr


@dataclass(frozen=True)
class Taint:
    """A node's ``key=value:Effect``: components that do not tolerate it stay away."""

    key: str
    value: str
    effect: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str = "Equal"  # or Exists
    value: str = ""
    effect: str = ""  # empty: every effect
    seconds: float | None = None  # NoExecute only: how long to stay once tainted (None: for good)

    def tolerates(self, taint: Taint) -> bool:
        if self.key != taint.key or (self.effect and self.effect != taint.effect):
            return False
        return self.operator == "Exists" or self.value == taint.value


UNREACHABLE = Taint("node.neon-grid.dev/unreachable", "", NO_EXECUTE)


def unreachable_grace(tolerations: tuple[Toleration, ...]) -> float:
    """Seconds a component stays on an unreachable node: 0 (leave at once) unless tolerated,
    ``inf`` when tolerated without tolerationSeconds; the longest toleration wins."""
    graces = [math.inf if t.seconds is None else t.seconds for t in tolerations if t.tolerates(UNREACHABLE)]
    return max(graces, default=0.0)


@dataclass(frozen=True)
class AffinityTerm:
    """Be on (affinity) or off (anti-affinity) a node running ``component``."""

    component: str
    required: bool = True
    weight: int = 50


@dataclass(frozen=True)
class SpreadSpec:
    """Keep this component's replicas balanced across the values of a node label."""

    topology_key: str
    max_skew: int = 1
    when_unsatisfiable: str = "DoNotSchedule"


@dataclass(frozen=True)
class PlacementSpec:
    """Where a component may and would rather run."""

    node_selector: dict[str, str] = field(default_factory=dict)
    required: tuple[LabelExpr, ...] = ()
    preferred: tuple[PreferredTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    affinity: tuple[AffinityTerm, ...] = ()
    anti_affinity: tuple[AffinityTerm, ...] = ()
    spread: SpreadSpec | None = None
    capabilities: tuple[str, ...] = ()

    def expressions(self) -> tuple[LabelExpr, ...]:
        """nodeSelector and required, as one list of expressions."""
        selector = tuple(LabelExpr(k, "In", (v,)) for k, v in sorted(self.node_selector.items()))
        return selector + self.required

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"nodeSelector": dict(self.node_selector)}
        if self.required:
            doc["required"] = [_expr_doc(e) for e in self.required]
        if self.preferred:
            doc["preferred"] = [{"weight": p.weight, **_expr_doc(p.expr)} for p in self.preferred]
        if self.tolerations:
            doc["tolerations"] = [
                {"key": t.key, "operator": t.operator, "value": t.value, "effect": t.effect}
                | ({} if t.seconds is None else {"tolerationSeconds": t.seconds})
                for t in self.tolerations
            ]
        for name, terms in (("affinity", self.affinity), ("antiAffinity", self.anti_affinity)):
            if terms:
                doc[name] = [
                    {"component": t.component, "type": "required" if t.required else "preferred", "weight": t.weight}
                    for t in terms
                ]
        if self.spread:
            doc["spread"] = {
                "topologyKey": self.spread.topology_key,
                "maxSkew": self.spread.max_skew,
                "whenUnsatisfiable": self.spread.when_unsatisfiable,
            }
        if self.capabilities:
            doc["capabilities"] = list(self.capabilities)
        return doc


def _expr_doc(expr: LabelExpr) -> dict[str, Any]:
    doc: dict[str, Any] = {"key": expr.key, "operator": expr.operator}
    if expr.values:
        doc["values"] = list(expr.values)
    return doc


def parse_taint(text: str) -> Taint:
    """``key=value:Effect`` or ``key:Effect`` (the agent's --taint)."""
    body, sep, effect = text.rpartition(":")
    key, _, value = body.partition("=")
    if not sep or effect not in EFFECTS or not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
        raise ValueError(f"taint must look like key=value:NoSchedule or key:PreferNoSchedule, got {text!r}")
    return Taint(key, value, effect)


# ----------------------------------------------------------------- parsing --

PLACEMENT_FIELDS = {
    "nodeSelector",
    "required",
    "preferred",
    "tolerations",
    "affinity",
    "antiAffinity",
    "spread",
    "capabilities",
}


def parse_placement(doc: Any, path: str, components: set[str] | None = None) -> PlacementSpec:
    """Validate a component's ``placement``; ``components`` are the app's names (for affinity)."""
    pdoc = mapping(doc, path, optional=PLACEMENT_FIELDS)
    selector = pdoc.get("nodeSelector") or {}
    sel_path = f"{path}.nodeSelector"
    if not isinstance(selector, dict):
        raise InvalidManifest(f"{sel_path} must be a mapping of label to value", field=sel_path)
    for key, value in selector.items():
        _label_key(key, f"{sel_path}.{key}", sel_path)
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            raise InvalidManifest(
                f"{sel_path}.{key} must be a label value string (quote numbers and booleans), got {value!r}",
                field=f"{sel_path}.{key}",
            )
    required = tuple(_expr(e, f"{path}.required[{i}]") for i, e in enumerate(list_field(pdoc, "required", path)))
    preferred = []
    for i, item in enumerate(list_field(pdoc, "preferred", path)):
        ipath = f"{path}.preferred[{i}]"
        body = mapping(item, ipath, required={"weight", "key", "operator"}, optional={"values"})
        weight = _weight(body["weight"], f"{ipath}.weight")
        preferred.append(PreferredTerm(weight, _expr({k: v for k, v in body.items() if k != "weight"}, ipath)))
    tolerations = tuple(
        _toleration(t, f"{path}.tolerations[{i}]") for i, t in enumerate(list_field(pdoc, "tolerations", path))
    )
    affinity = tuple(
        _affinity(t, f"{path}.affinity[{i}]", components) for i, t in enumerate(list_field(pdoc, "affinity", path))
    )
    anti = tuple(
        _affinity(t, f"{path}.antiAffinity[{i}]", components)
        for i, t in enumerate(list_field(pdoc, "antiAffinity", path))
    )
    spread = _spread(pdoc["spread"], f"{path}.spread") if pdoc.get("spread") is not None else None
    caps = list_field(pdoc, "capabilities", path)
    for i, cap in enumerate(caps):
        if not isinstance(cap, str) or not CAPABILITY.match(cap):
            raise InvalidManifest(
                f"{path}.capabilities[{i}] must be a capability name, got {cap!r}", field=f"{path}.capabilities[{i}]"
            )
    spec = PlacementSpec(
        node_selector=dict(selector),
        required=required,
        preferred=tuple(preferred),
        tolerations=tolerations,
        affinity=affinity,
        anti_affinity=anti,
        spread=spread,
        capabilities=tuple(caps),
    )
    _refuse_contradictions(spec, path)
    return spec


def _label_key(key: Any, field_path: str, where: str) -> None:
    if not isinstance(key, str) or not LABEL_KEY.match(key):
        raise InvalidManifest(f"{where}: {key!r} is not a valid label key", field=field_path)


def _expr(doc: Any, path: str) -> LabelExpr:
    body = mapping(doc, path, required={"key", "operator"}, optional={"values"})
    _label_key(body["key"], f"{path}.key", path)
    op = body["operator"]
    if op not in OPERATORS:
        raise InvalidManifest(
            f"{path}.operator must be one of {', '.join(OPERATORS)}, got {op!r}", field=f"{path}.operator"
        )
    values = body.get("values") or []
    if not isinstance(values, list) or any(not isinstance(v, str) or not LABEL_VALUE.match(v) for v in values):
        raise InvalidManifest(f"{path}.values must be a list of label value strings", field=f"{path}.values")
    if op in ("In", "NotIn") and not values:
        raise InvalidManifest(f"{path}: {op} needs at least one value", field=f"{path}.values")
    if op in ("Exists", "DoesNotExist") and values:
        raise InvalidManifest(f"{path}: {op} takes no values", field=f"{path}.values")
    return LabelExpr(body["key"], op, tuple(values))


def _weight(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise InvalidManifest(f"{path} must be an integer from 1 to 100, got {value!r}", field=path)
    return value


def _toleration(doc: Any, path: str) -> Toleration:
    body = mapping(doc, path, required={"key"}, optional={"operator", "value", "effect", "tolerationSeconds"})
    _label_key(body["key"], f"{path}.key", path)
    op = body.get("operator", "Equal")
    if op not in ("Equal", "Exists"):
        raise InvalidManifest(f"{path}.operator must be Equal or Exists, got {op!r}", field=f"{path}.operator")
    value = body.get("value", "")
    if not isinstance(value, str) or (op == "Exists" and value):
        raise InvalidManifest(f"{path}.value must be a string (and empty with Exists)", field=f"{path}.value")
    effect = body.get("effect", "")
    if effect not in ("", *EFFECTS, NO_EXECUTE):
        raise InvalidManifest(
            f"{path}.effect must be NoSchedule, PreferNoSchedule or NoExecute, got {effect!r}", field=f"{path}.effect"
        )
    seconds = body.get("tolerationSeconds")
    if seconds is not None:
        where = f"{path}.tolerationSeconds"
        if effect != NO_EXECUTE:
            raise InvalidManifest(f"{where} needs effect: NoExecute (it says how long to stay)", field=where)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
            raise InvalidManifest(f"{where} must be a number of seconds >= 0, got {seconds!r}", field=where)
        seconds = float(seconds)
    return Toleration(body["key"], op, value, effect, seconds)


def _affinity(doc: Any, path: str, components: set[str] | None) -> AffinityTerm:
    body = mapping(doc, path, required={"component"}, optional={"type", "weight"})
    name = dns_name(body["component"], f"{path}.component")
    if components is not None and name not in components:
        raise InvalidManifest(
            f"{path}.component names {name!r}, which is not a component of this application "
            f"(components: {', '.join(sorted(components))})",
            field=f"{path}.component",
        )
    kind = body.get("type", "required")
    if kind not in ("required", "preferred"):
        raise InvalidManifest(f"{path}.type must be required or preferred, got {kind!r}", field=f"{path}.type")
    weight = _weight(body["weight"], f"{path}.weight") if "weight" in body else 50
    return AffinityTerm(name, kind == "required", weight)


def _spread(doc: Any, path: str) -> SpreadSpec:
    body = mapping(doc, path, required={"topologyKey"}, optional={"maxSkew", "whenUnsatisfiable"})
    _label_key(body["topologyKey"], f"{path}.topologyKey", path)
    skew = body.get("maxSkew", 1)
    if isinstance(skew, bool) or not isinstance(skew, int) or skew < 1:
        raise InvalidManifest(f"{path}.maxSkew must be an integer >= 1, got {skew!r}", field=f"{path}.maxSkew")
    when = body.get("whenUnsatisfiable", "DoNotSchedule")
    if when not in UNSATISFIABLE:
        raise InvalidManifest(
            f"{path}.whenUnsatisfiable must be DoNotSchedule or ScheduleAnyway, got {when!r}",
            field=f"{path}.whenUnsatisfiable",
        )
    return SpreadSpec(body["topologyKey"], skew, when)


def _refuse_contradictions(spec: PlacementSpec, path: str) -> None:
    with_ = {t.component for t in spec.affinity if t.required}
    without = {t.component for t in spec.anti_affinity if t.required}
    both = sorted(with_ & without)
    if both:
        raise InvalidManifest(
            f"{path}: {both[0]} is both a required affinity and a required anti-affinity", field=f"{path}.antiAffinity"
        )
    for key, value in spec.node_selector.items():
        for expr in spec.required:
            if expr.key == key and expr.why_not({key: value}) is not None:
                raise InvalidManifest(
                    f"{path}: nodeSelector {key}={value} contradicts required {expr.key} {expr.operator} "
                    f"{list(expr.values)}; no node can satisfy both",
                    field=f"{path}.required",
                )
