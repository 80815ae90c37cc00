"""The package's layers (docs/layout.md's "The layers"): which part of aoarm may import which,
read from the source (every import, module-level or inside a function), and no import circles."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(REPO, "aoarm")

# a module's part (the longest prefix listed) -> the parts it may import (its own always)
LOW = ("aoarm.config.key_table",)  # a table of names, importing nothing: readable by every layer
MAY_IMPORT = {
  "aoarm.config.key_table": (),
  "aoarm.infra": (),
  "aoarm.orders": (),
  "aoarm.rope": (),
  "aoarm.data": ("aoarm.infra",),
  "aoarm.kernels": ("aoarm.infra", "aoarm.rope"),
  "aoarm.models": ("aoarm.kernels", "aoarm.infra", "aoarm.orders", "aoarm.rope", *LOW),
  "aoarm.losses": ("aoarm.kernels", "aoarm.orders"),
  "aoarm.config": ("aoarm.infra", "aoarm.kernels", "aoarm.models", "aoarm.data"),
}
_RUN = ("aoarm.config", "aoarm.data", "aoarm.infra", "aoarm.kernels", "aoarm.models")
_RUN += ("aoarm.orders", "aoarm.rope", "aoarm.losses")
MAY_IMPORT["aoarm.run"] = _RUN
MAY_IMPORT["aoarm.sample"] = _RUN + ("aoarm.run",)  # the front-end restores through run.setup
MAY_IMPORT["aoarm.tools"] = _RUN + ("aoarm.run", "aoarm.sample")
MAY_IMPORT["aoarm.main"] = _RUN + ("aoarm.run", "aoarm.sample")


def _modules() -> dict:
  """{dotted name: path} of every module of aoarm (a package is its __init__)."""
  out = {}
  for root, _, files in os.walk(PKG):
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(root, f), REPO)[: -len(".py")]
        name = rel.replace(os.sep, ".").removesuffix(".__init__")
        out[name] = os.path.join(root, f)
  return out


MODULES = _modules()


def _imports(name: str) -> set:
  """The aoarm modules `name` imports (`from a.b import c`: a.b.c where c is a module)."""
  tree = ast.parse(open(MODULES[name], encoding="utf-8").read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name.startswith("aoarm")}
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aoarm"):
      for a in node.names:
        sub = f"{node.module}.{a.name}"
        out.add(sub if sub in MODULES else node.module)
  return {m for m in out if m != name}


GRAPH = {m: _imports(m) for m in MODULES}


def _part(name: str) -> str:
  hits = [p for p in MAY_IMPORT if name == p or name.startswith(p + ".")]
  assert hits, f"{name} belongs to no part of MAY_IMPORT: add it to the table and docs/layout.md"
  return max(hits, key=len)


def _inside(name: str, part: str) -> bool:
  return name == part or name.startswith(part + ".")


def test_every_module_belongs_to_a_part():
  for m in MODULES:
    if m != "aoarm":
      _part(m)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m != "aoarm"))
def test_a_module_imports_only_the_layers_below_it(name):
  part = _part(name)
  allowed = (part,) + MAY_IMPORT[part]
  bad = sorted(t for t in GRAPH[name] if t != "aoarm" and not any(_inside(t, a) for a in allowed))
  assert not bad, f"{name} ({part}) imports {bad}; it may import {allowed}"


def test_no_import_circles():
  """Tarjan's strongly connected components over every import, lazy ones included."""
  index, low, stack, on, circles = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in GRAPH.get(v, ()):
      if w not in GRAPH:
        continue
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        circles.append(sorted(comp))

  for v in sorted(GRAPH):
    if v not in index:
      visit(v)
  assert not circles, f"import circles: {circles}"


def test_the_rules_see_a_forbidden_import(tmp_path):
  """The checker itself: a kernel importing a model is caught."""
  GRAPH["aoarm.kernels.rmsnorm"] = GRAPH["aoarm.kernels.rmsnorm"] | {"aoarm.models.layers"}
  try:
    with pytest.raises(AssertionError, match="imports"):
      test_a_module_imports_only_the_layers_below_it("aoarm.kernels.rmsnorm")
  finally:
    GRAPH["aoarm.kernels.rmsnorm"] = _imports("aoarm.kernels.rmsnorm")
