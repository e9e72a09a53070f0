"""perfbench baseline save | list."""

from __future__ import annotations

from ._util import positive

ORDER = 45


def register(sub) -> None:
    p = sub.add_parser("baseline", help="save a run as a named baseline, or list the baselines",
                       description="Baselines keep every request's latency (exact, zstd Parquet, ~8 bytes a "
                                   "request) plus machine, versions and load shape, under data/baselines/NAME/.")
    bsub = p.add_subparsers(dest="baseline_command", metavar="ACTION")
    s = bsub.add_parser("save", help="save RUN_DIR (or a Locust/k6/pytest-benchmark result) as baseline NAME")
    s.add_argument("source", metavar="RUN_DIR", help="a run directory, or Locust --csv files, a k6 JSON file, a "
                                                     "pytest-benchmark JSON file")
    s.add_argument("--name", required=True, help="baseline name, e.g. main or v1.4")
    s.add_argument("--baselines-dir", default="data/baselines", help="default data/baselines")
    s.add_argument("--max-requests", type=positive(int), default=100_000,
                   help="keep a seeded uniform subsample above this many requests (default 100000)")
    s.add_argument("--force", action="store_true", help="replace an existing baseline of that name")
    s.set_defaults(func=cmd_save)
    ls = bsub.add_parser("list", help="list the saved baselines")
    ls.add_argument("--baselines-dir", default="data/baselines", help="default data/baselines")
    ls.set_defaults(func=cmd_list)
    p.set_defaults(func=_no_action(p))


def cmd_save(args) -> int:
    from ..compare.baselines import save

    path = save(args.source, args.name, root=args.baselines_dir, max_requests=args.max_requests,
                overwrite=args.force)
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"baseline {args.name} saved in {path} ({size / 1024:.1f} KB)")
    return 0


def cmd_list(args) -> int:
    from ..compare.baselines import list_baselines

    rows = list_baselines(args.baselines_dir)
    if not rows:
        print(f"no baselines in {args.baselines_dir} (save one: perfbench baseline save RUN_DIR --name NAME)")
        return 0
    head = ("name", "saved at", "source", "requests", "endpoints", "machine", "size", "from")
    body = [(r["name"], (r["saved_at"] or "")[:19], r["source"] or "", str(r["requests"] or "-"), str(r["endpoints"]),
             r["node"] or "?", f"{r['bytes'] / 1024:.0f} KB", r["label"] or "") for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    for row in [head, *body]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _no_action(parser):
    def show(args) -> int:
        from ._util import err

        parser.print_help()
        err("perfbench baseline: error: name an action, save or list (see perfbench baseline --help)")
        return 2

    return show
