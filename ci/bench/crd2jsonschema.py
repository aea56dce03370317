#!/usr/bin/env python3
"""Convert CustomResourceDefinitions to kubeconform's JSON Schema layout.

    crd2jsonschema.py -o OUTDIR CRD.yaml|DIR [...]

Writes one file per (kind, served version): OUTDIR/{kind-lowercase}_{version}.json, to be
used as `kubeconform -schema-location 'OUTDIR/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'`
(kubeconform lower-cases ResourceKind itself).

Strictness follows kubeconform's scripts/openapi2jsonschema.py (what its README tells
users to run before `kubeconform -strict`): every object schema that lists `properties`
and has no `additionalProperties` gets `additionalProperties: false`, except the root
(unless DENY_ROOT_ADDITIONAL_PROPERTIES is set or --deny-root is given), and
`format: int-or-string` becomes oneOf string|integer. kubeconform's `-strict` flag itself
only rejects duplicate keys; unknown fields are caught only through these schemas.

Two modes:
  --mode upstream: exactly the upstream transformation. Note that it only recurses into
      dict values, never into lists, so subschemas under oneOf/anyOf/allOf (YAML lists)
      are left open -- which is what keeps Cilium's "one of endpointSelector|nodeSelector"
      and "at least one of ingress|ingressDeny|egress|egressDeny" branches satisfiable.
  --mode structural (default): the same result, reached by walking schema positions only
      (properties/*, items, additionalProperties; combinator branches untouched). It also
      avoids two upstream pitfalls that Cilium's CRDs do not trigger today: a *field*
      named `properties` being taken for the keyword (kubeconform issue #295) and closing
      objects marked x-kubernetes-preserve-unknown-fields; and it maps
      `x-kubernetes-int-or-string` to anyOf integer|string when no anyOf is given.
  For the four Cilium 1.19 CRDs both modes produce identical schemas (checked).

Stdlib + PyYAML only.
"""
import argparse
import json
import os
import sys

import yaml

try:  # libyaml makes the 400 KB Cilium CRDs load ~10x faster
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

COMBINATORS = ("allOf", "anyOf", "oneOf", "not")


# --- upstream (kubeconform scripts/openapi2jsonschema.py) -------------------------------

def upstream_additional_properties(data, skip=False):
    if isinstance(data, dict):
        if "properties" in data and not skip:
            if "additionalProperties" not in data:
                data["additionalProperties"] = False
        for _, v in data.items():
            upstream_additional_properties(v)
    return data


def upstream_replace_int_or_string(data):
    if isinstance(data, dict):
        new = {}
        for k, v in data.items():
            if isinstance(v, dict) and v.get("format") == "int-or-string":
                new[k] = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
            else:
                new[k] = upstream_replace_int_or_string(v)
        return new
    if isinstance(data, list):
        return [upstream_replace_int_or_string(x) for x in data]
    return data


# --- structural ---------------------------------------------------------------------------

def close_structural(node, is_root=False, deny_root=False):
    """Close object schemas reachable through structural positions only."""
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
        node.pop("format", None)
        node.pop("type", None)
        if not any(k in node for k in COMBINATORS):
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    props = node.get("properties")
    if isinstance(props, dict):
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        if "additionalProperties" not in node and not preserve and (deny_root or not is_root):
            node["additionalProperties"] = False
        for child in props.values():
            close_structural(child)
    items = node.get("items")
    if isinstance(items, dict):
        close_structural(items)
    elif isinstance(items, list):
        for child in items:
            close_structural(child)
    addl = node.get("additionalProperties")
    if isinstance(addl, dict):
        close_structural(addl)
    return node


# --- driver -------------------------------------------------------------------------------

def iter_crds(path):
    with open(path, encoding="utf-8") as f:
        for doc in yaml.load_all(f, Loader=_Loader):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "CustomResourceDefinition":
                yield doc
            elif isinstance(doc.get("items"), list):
                for item in doc["items"]:
                    if isinstance(item, dict) and item.get("kind") == "CustomResourceDefinition":
                        yield item


def collect_inputs(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.endswith((".yaml", ".yml", ".json")):
                    out.append(os.path.join(p, name))
        else:
            out.append(p)
    return out


def convert(crd, mode, deny_root):
    kind = crd["spec"]["names"]["kind"]
    for version in crd["spec"].get("versions") or []:
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            schema = ((crd["spec"].get("validation") or {}).get("openAPIV3Schema"))
        if schema is None:
            continue
        if mode == "upstream":
            schema = upstream_additional_properties(schema, skip=not deny_root)
            schema = upstream_replace_int_or_string(schema)
        else:
            schema = close_structural(schema, is_root=True, deny_root=deny_root)
        yield f"{kind}_{version['name']}".lower() + ".json", schema


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="CRD YAML files or directories of them")
    ap.add_argument("-o", "--out", required=True, help="output directory")
    ap.add_argument("--mode", choices=("structural", "upstream"), default="structural")
    ap.add_argument("--deny-root", action="store_true",
                    default=bool(os.getenv("DENY_ROOT_ADDITIONAL_PROPERTIES")),
                    help="also close the root object (env DENY_ROOT_ADDITIONAL_PROPERTIES)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    written = 0
    for path in collect_inputs(args.inputs):
        for crd in iter_crds(path):
            for name, schema in convert(crd, args.mode, args.deny_root):
                dest = os.path.join(args.out, name)
                tmp = dest + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(schema, f, indent=1, sort_keys=True)
                    f.write("\n")
                os.replace(tmp, dest)
                written += 1
                if not args.quiet:
                    print(f"JSON schema written to {dest}")
    if written == 0:
        print("crd2jsonschema: no CustomResourceDefinition with an openAPIV3Schema found",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
