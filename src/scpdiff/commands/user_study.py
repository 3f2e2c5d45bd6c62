"""scpdiff user-study: Table 4's blind ranking study (paper section 5.5).

    scpdiff user-study build --benchmark toy --methods ControlNet=normal:1 SCP-Diff=joint:0.85 \\
        [--images OASIS=DIR ...] --groups 500 --seed 0 --out work/toy/user_study
    scpdiff user-study invite work/toy/user_study --count 20     # prints one link per participant
    scpdiff user-study serve work/toy/user_study [--host 127.0.0.1] [--port 8000]
    scpdiff user-study results work/toy/user_study --out results/toy/table4
"""

from __future__ import annotations

import argparse

HELP = "Table 4: build a blind ranking study, invite participants, serve the page, write the AHR table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    b = sub.add_parser("build", help="pick N label maps and one image per method for each")
    b.add_argument("--benchmark", required=True, help="benchmark name or YAML path (the validation label maps)")
    b.add_argument("--methods", nargs="*", default=[], metavar="[LABEL=]PRIOR:MU",
                   help="our settings, read from WORK/BENCH/samples/PRIOR/muMU/fid (e.g. normal:1 joint:0.85)")
    b.add_argument("--images", nargs="*", default=[], metavar="[LABEL=]DIR",
                   help="any method's images named after the label maps (e.g. OASIS=outputs/oasis; without "
                        "LABEL the folder's name); listed first")
    b.add_argument("--work-dir", default="work", help="the workflow's work_dir (default: work)")
    b.add_argument("--groups", type=int, required=True, help="number of groups (label maps)")
    b.add_argument("--seed", type=int, default=0, help="draws the groups and every participant's order")
    b.add_argument("--out", required=True, help="the study folder to write")

    i = sub.add_parser("invite", help="add participants; prints their invitation links")
    i.add_argument("study", help="study folder")
    i.add_argument("--count", type=int, default=0, help="number of participants")
    i.add_argument("--labels", nargs="*", default=[], help="one participant per label (a note, e.g. p01)")
    i.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the study is served")

    s = sub.add_parser("serve", help="serve the ranking page (loopback by default)")
    s.add_argument("study", help="study folder")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    s.add_argument("--port", type=int, default=8000, help="port (0: any free port, printed)")
    s.add_argument("--threads", type=int, default=8, help="request threads")

    r = sub.add_parser("results", help="write table4.csv/.tex and table4_summary.json")
    r.add_argument("study", help="study folder")
    r.add_argument("--out", required=True, help="output folder, e.g. results/BENCH/table4")
    r.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the participants")
    r.add_argument("--confidence", type=float, default=0.95, help="bootstrap interval level")
    r.add_argument("--seed", type=int, default=0, help="bootstrap seed")

    c = sub.add_parser("combine", help="Table 4 over every benchmark (results/table4.csv/.tex) from their table4 folders")
    c.add_argument("tables", nargs="+", help="each benchmark's table4 folder (scpdiff user-study results --out)")
    c.add_argument("--out-dir", required=True, help="output folder, e.g. results")


def run(args) -> int:
    if args.action == "build":
        from ..userstudy.build import build_study_from_args

        print(build_study_from_args(args.benchmark, args.methods, args.images, args.work_dir, args.groups,
                                    args.seed, args.out))
    elif args.action == "invite":
        from ..userstudy.tokens import invite

        print("\n".join(invite(args.study, args.count, args.labels, args.base_url)))
    elif args.action == "serve":
        from ..userstudy.app import serve

        serve(args.study, args.host, args.port, args.threads)
    elif args.action == "combine":
        from ..userstudy.results import write_study_table4

        for path in write_study_table4(args.tables, args.out_dir):
            print(path)
    else:
        from ..userstudy.results import write_table4

        for path in write_table4(args.study, args.out, args.bootstrap, args.confidence, args.seed):
            print(path)
    return 0
