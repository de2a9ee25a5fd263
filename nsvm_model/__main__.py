"""python -m nsvm_model: traces, comparisons and ordering checks from a shell.

Errors (an unknown field, variant, step or rule) print one line naming it
and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

EXAMPLES = """examples:
  python -m nsvm_model trace --preset asid_zero
  python -m nsvm_model trace --isa vmx --set vmcs12.host_tr_selector=0
  python -m nsvm_model compare upstream v6-unified --svg v6.svg
  python -m nsvm_model check-order v6-unified
  python -m nsvm_model check-order --move svm.enter.enter_guest_mode --after svm.enter.init_mmu_context
  python -m nsvm_model explain R18
  python -m nsvm_model review-patch --base pre-gif-fix v6-1*.patch --svg series.svg
"""


def _scenario(args):
    import nsvm_model as nm
    sc = nm.Scenario.preset(args.isa, args.preset)
    changes = {}
    for item in args.set or []:
        path, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set: expected PATH=VALUE, got {item!r}")
        changes[path.strip()] = value.strip()
    return sc.with_fields(changes) if changes else sc


def cmd_trace(args):
    import nsvm_model as nm
    from nsvm_model.text import format_trace
    trace = nm.run(_scenario(args), args.variant)
    print(format_trace(trace, max_changes=args.changes))
    for v in trace.invariant_violations():
        print(f"invariant {v}")


def cmd_compare(args):
    import nsvm_model as nm
    sc = _scenario(args) if (args.preset_given or args.set) else None
    r = nm.review(args.b, scenario=sc, baseline=args.a, isa=args.isa)
    text = r.text(width=args.width)
    outputs = [(path, r.svg, "w") for path in [args.svg] if path] + [(path, r.png, "wb") for path in [args.png] if path]
    for path, _, mode in outputs:       # refuse an unwritable path before printing anything
        _check_writable(path)
    print(text)
    for path, draw, mode in outputs:
        with open(path, mode) as f:
            f.write(draw())


def _check_writable(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ValueError(f"--svg/--png: cannot write {path!r} (the folder must exist and be writable)")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"--svg/--png: {path!r} exists and is not writable")


def cmd_check_order(args):
    import nsvm_model as nm
    if args.move:
        if bool(args.before) == bool(args.after):
            raise ValueError("check-order --move: give exactly one of --before or --after")
        ordering = nm.move(args.move, before=args.before, after=args.after, variant=args.variant or "upstream")
    elif args.variant:
        ordering = args.variant
    else:
        raise ValueError("check-order: name a variant, or --move STEP --before/--after STEP")
    from nsvm_model.text import format_rule_violation
    found = nm.check_order(ordering)
    if not found:
        print("no ordering rule is broken")
    from nsvm_model.review import resolve
    isa = resolve(ordering).isa
    print("\n".join(format_rule_violation(v, isa) for v in found))


def cmd_explain(args):
    import nsvm_model as nm
    print(nm.explain(args.rule))


def _bounded_int(low: int, high: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer from {low} to {high}, got {text[:40]!r}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be from {low} to {high}, got {value}")
        return value
    return parse


_width = _bounded_int(40, 400, "--width")
_count = _bounded_int(0, 1000, "--changes")


def cmd_review_patch(args):
    from nsvm_model.patches import review_patches
    texts = []
    for path in args.patches:
        try:
            with open(path, encoding="utf-8") as f:
                texts.append(f.read())
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a patch (not UTF-8 text)") from None
    if args.svg:
        _check_writable(args.svg)
    r = review_patches(texts, [os.path.basename(p) for p in args.patches], base=args.base)
    print(r.text(width=args.width))
    if args.svg:
        import nsvm_model as nm
        with open(args.svg, "w") as f:
            f.write(nm.review(r.patches[-1].series, baseline=r.base).svg())


def parser():
    p = argparse.ArgumentParser(prog="python -m nsvm_model", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Run KVM's nested VMRUN / VM-entry model from a shell.")
    sub = p.add_subparsers(dest="command", required=True)

    def scenario_args(sp):
        sp.add_argument("--isa", choices=["svm", "vmx"], default="svm")
        sp.add_argument("--preset", default=None, help="a named scenario (default: the ISA default)")
        sp.add_argument("--set", action="append", metavar="PATH=VALUE",
                        help="change a field, e.g. vmcb12.control.asid=0 or vmcb12.save.efer='EFER_SVME|EFER_LME'")

    t = sub.add_parser("trace", help="every step of one run", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    scenario_args(t)
    t.add_argument("--variant", default="upstream")
    t.add_argument("--changes", type=_count, default=4, help="field changes shown per step (0 to 1000)")
    t.set_defaults(func=cmd_trace)

    c = sub.add_parser("compare", help="two orderings side by side, 72 columns", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("a", help="baseline variant, e.g. upstream")
    c.add_argument("b", help="variant to compare, e.g. v6-unified")
    scenario_args(c)
    c.add_argument("--width", type=_width, default=72, help="columns of the text, 40 to 400 (default 72)")
    c.add_argument("--svg", help="also write a diagram as SVG")
    c.add_argument("--png", help="also write a diagram as PNG")
    c.set_defaults(func=cmd_compare)

    o = sub.add_parser("check-order", help="the ordering rules a variant or an edit breaks", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    o.add_argument("variant", nargs="?")
    o.add_argument("--move", metavar="STEP")
    o.add_argument("--before", metavar="STEP")
    o.add_argument("--after", metavar="STEP")
    o.set_defaults(func=cmd_check_order)

    r = sub.add_parser("review-patch", help="a posted patch series: what it moves and what that breaks",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("patches", nargs="+", metavar="PATCH", help="unified diffs of nested.c, applied in order")
    r.add_argument("--base", metavar="VARIANT", help="the ordering the first patch applies to "
                   "(default: the first variant its context fits)")
    r.add_argument("--width", type=_width, default=72, help="columns of the text, 40 to 400 (default 72)")
    r.add_argument("--svg", help="also write the base and the series' result as an SVG")
    r.set_defaults(func=cmd_review_patch)

    e = sub.add_parser("explain", help="one ordering rule: why, where, what breaks", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("rule")
    e.set_defaults(func=cmd_explain)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if hasattr(args, "preset"):
        args.preset_given = args.preset is not None
        args.preset = args.preset or "default"
    try:
        args.func(args)
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:            # a bug of ours: still one line, and say so
        print(f"error: internal error ({type(exc).__name__}): {_one_line(exc)}; please report it", file=sys.stderr)
        return 2
    return 0


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:400] + "..."


if __name__ == "__main__":
    sys.exit(main())
