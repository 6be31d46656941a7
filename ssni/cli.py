"""The `ssni` command: eval, purify, calibrate, report, train-diffusion, train-classifier.

`ssni eval` with no arguments runs the embedded MNIST demo on the CPU. The arguments become typed requests
(`ssni.eval.requests`) here, at the edge; the library never sees argparse. A user error (bad input, unknown preset,
missing or mismatched file: `SSNIUserError` and its kin) prints one line `ssni: error: …` on stderr and exits with
status 2; `--debug` (or SSNI_DEBUG=1) shows the traceback instead. Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ssni.errors import SSNIUserError, one_line
from ssni.eval.methods import METHOD_NAMES, Method
from ssni.eval.presets import PRESETS
from ssni.eval.requests import CalibrateRequest, EvalRequest, Overrides, PurifyRequest, ReportRequest, Sources

USER_ERRORS = (SSNIUserError,)  # with its subclasses CheckpointError, CalibrationFileError, CalibrationMismatchError
EXIT_USER_ERROR = 2
TRAIN_COMMANDS = ("train-diffusion", "train-classifier")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors (an unknown flag, a value of the wrong type) read like every other user error: one
    line `ssni: error: …` on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"ssni: error: {one_line(message)} (see `{self.prog} --help`)\n")


def _csv(kind):
    """A non-empty comma-separated list of `kind` (blank items are skipped, items are stripped)."""

    def parse(text: str):
        items = [v.strip() for v in text.split(",") if v.strip()]
        try:
            values = tuple(kind(v) for v in items)
        except ValueError:
            values = ()
        if not values:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}")
        return values

    return parse


EVAL_DATA_HELP = "dataset folder (CIFAR-10 python batches; ImageNet val class folders)"
PURIFY_DATA_HELP = f"with no input: the {EVAL_DATA_HELP}"
CALIBRATION_DATA_HELP = (
    "with no input: the preset's training images, the CIFAR-10 python batches folder (its training batches are "
    "read) or ImageNet TRAIN class folders (ILSVRC train; a horizontal flip is applied as the reference does). A "
    "calibration drawn from the folder you evaluate on is refused when its images overlap the evaluation subset"
)
INPUT_HELP = "a folder of images, a .pt or .npy file [N, C, H, W] in [0, 1] (default: the preset's {what})"


def _add_model_args(p: argparse.ArgumentParser, data_help: str, *, classifier: bool = True) -> None:
    """The options every model-running command takes; `classifier`: also the classifier, the calibration, the
    constant t* and the ImageNet subset seed (eval and purify; calibrate uses none of them)."""
    p.add_argument("--preset", default="mnist", help=f"one of: {', '.join(PRESETS)} (default: mnist)")
    p.add_argument(
        "--diffusion-checkpoint", type=Path, help="diffusion model file (default: the preset's embedded one)"
    )
    p.add_argument("--data", type=Path, help=data_help)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--batch-size", type=int, help="images per chunk (default: the preset's)")
    p.add_argument("--num-levels", type=int, help="EPS noise levels T' (default: the preset's)")
    if not classifier:
        return
    p.add_argument("--classifier-checkpoint", type=Path, help="classifier file (default: the preset's embedded one)")
    p.add_argument("--calibration", type=Path, help="calibration file from `ssni calibrate` (default: embedded)")
    p.add_argument("--tau", type=float, help="SSNI-N temperature (default: the calibration's proposed τ)")
    p.add_argument("--t-star", type=int, help="constant t* of the baseline (single-stage hosts; default: the preset's)")
    p.add_argument("--data-seed", type=int, default=0, help="ImageNet evaluation subset seed (default 0)")


def _add_linear_batch_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--linear-batch-eval",
        type=int,
        help="SSNI-L: e_min/e_max over the reference set and groups of this many consecutive samples while "
        "evaluating (default: the preset's; the reference evaluates in batches of 32)",
    )


def _add_network_batch(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--network-batch",
        type=int,
        help="most rows per diffusion-network call for score norms and purification (default: the batch size); "
        "more samples than this stream through the continuous-batching engine",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ssni", description="Sample-specific Score-aware Noise Injection for diffusion-based purification."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("eval", help="clean and robust accuracy: constant t* vs SSNI-N vs SSNI-L (default: MNIST demo)")
    _add_model_args(p, EVAL_DATA_HELP)
    p.add_argument("--out", type=Path, help="records file (JSONL, resumable; default: ssni-results/<preset>.jsonl)")
    p.add_argument("--num-samples", type=int, help="images of the protocol subset (default: the preset's)")
    p.add_argument("--seeds", type=_csv(int), help="comma-separated seeds (default: 121,122,123)")
    p.add_argument("--methods", type=_csv(str), help=f"comma-separated subset of {','.join(METHOD_NAMES)}")
    p.add_argument(
        "--t-sweep",
        type=_csv(int),
        help="extra constant-t baselines, e.g. 50,100,200 (for the report's accuracy vs t); each point visits every "
        "index from t − 1 down to 0 when the preset's defence does, so it costs t evaluations per image",
    )
    p.add_argument("--attacks", type=_csv(str), help="comma-separated attacks (default: the preset's)")
    p.add_argument(
        "--eps",
        type=float,
        help="attack radius ε of every selected attack (in its norm; the selected attacks must share one norm)",
    )
    p.add_argument(
        "--step-size",
        type=float,
        help="attack step of every selected PGD, BPDA and score-aware attack (after --l2-step; AutoAttack sets its "
        "own steps)",
    )
    p.add_argument("--iterations", type=int, help="attack iterations (all attacks)")
    p.add_argument("--eot", type=int, help="EOT samples per gradient (all attacks)")
    p.add_argument("--surrogate-steps", type=int, help="reverse steps of the differentiable surrogate")
    p.add_argument(
        "--attack-seeds",
        choices=("shared", "per-seed"),
        help="shared (default, the reference protocol): attack once at the first seed and evaluate those adversarial "
        "examples under every seed; per-seed: attack anew for every seed",
    )
    p.add_argument("--save-adversarial", action="store_true", help="keep the adversarial examples beside the records")
    p.add_argument(
        "--l2-step",
        choices=("sign", "normalized"),
        help="L2 PGD step: sign (the reference's: sign(g)·0.007, then projection onto the ball; the paper presets' "
        "default) or normalized (g/‖g‖, at the sign step's L2 length)",
    )
    p.add_argument(
        "--bpda-schedule",
        choices=("defence", "surrogate"),
        help="what BPDA's forward pass purifies with: the defence's schedule (Lee & Kim) or the attack surrogate's "
        "(the SSNI reference code); default: the preset's",
    )
    p.add_argument(
        "--linear-batch-attack",
        type=int,
        help="SSNI-L: e_min/e_max over the reference set and groups of this many consecutive samples while "
        "attacking (default: the preset's; the reference attacks CIFAR-10 in batches of 16, ImageNet in 1s)",
    )
    _add_linear_batch_eval(p)
    p.add_argument(
        "--vote-scores",
        choices=("shared", "per-vote"),
        help="with votes (GNS, GDMP): SSNI's score norm once per input, or again for every vote (the reference)",
    )
    p.add_argument("--smoke", action="store_true", help="a tiny configuration that finishes in about a minute (CI)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing records file instead of resuming")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_network_batch(p)

    p = sub.add_parser("purify", help="purify images; write the purified tensor and per-sample score norm and t")
    _add_model_args(p, PURIFY_DATA_HELP)
    p.add_argument("input", nargs="?", type=Path, help=INPUT_HELP.format(what="evaluation subset"))
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="purified images, a .pt file of float32 [N, C, H, W]: the values the classifier sees, NOT clamped (the "
        "reverse walk may end slightly outside [0, 1]; clamp them yourself where [0, 1] is needed)",
    )
    p.add_argument(
        "--scores",
        type=Path,
        help="per-sample table, .csv or .json (default: <out>.csv): index, filename (the input file, or "
        "<file>[i] for a row of a .pt/.npy; empty for the preset's images), sample_id, score_norm, t, pred (and "
        "label for the preset's images)",
    )
    p.add_argument(
        "--png",
        type=Path,
        metavar="DIR",
        help="also write each purified image as an 8-bit PNG in DIR (clamped to [0, 1]), named after its input file "
        "(else <index>.png)",
    )
    p.add_argument("--method", default="ssni-n", help=f"{', '.join(METHOD_NAMES)} or constant@<t> (default ssni-n)")
    p.add_argument(
        "--seed", type=int, default=121, help="noise seed: a sample's noise depends on (seed, sample id) (default 121)"
    )
    p.add_argument("--num-samples", type=int, help="with no input: how many images of the preset's subset")
    _add_linear_batch_eval(p)
    _add_network_batch(p)

    p = sub.add_parser("calibrate", help="clean score-norm statistics and a proposed τ for SSNI")
    _add_model_args(p, CALIBRATION_DATA_HELP, classifier=False)
    p.add_argument("input", nargs="?", type=Path, help=INPUT_HELP.format(what="training images") + "; clean images")
    p.add_argument("--out", type=Path, required=True, help="calibration file to write (.json)")
    p.add_argument(
        "--num-samples",
        type=int,
        help="with no input: clean training images drawn from the preset's (default: the preset's, 5000 on CIFAR-10)",
    )
    p.add_argument(
        "--seed", type=int, default=121, help="seed of the EPS noise: a sample's noise depends on (seed, sample id)"
    )
    p.add_argument("--tau", type=float, help="store this τ instead of the proposed one")
    p.add_argument("--adversarial", type=Path, help="a records file whose adversarial score norms inform τ")

    p = sub.add_parser("report", help="Markdown table (mean ± std over seeds) and plots from a records file")
    p.add_argument("results", type=Path, help="records file written by `ssni eval`")
    p.add_argument("--out-dir", type=Path, help="where report.md and the PNGs go (default: <results>-report/)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    for name in TRAIN_COMMANDS:
        sub.add_parser(name, help=f"{name.replace('-', ' ')} of the embedded MNIST default (see {name} --help)")
    return parser


def _sources(args) -> Sources:
    """The files the command's flags name (flags a command lacks count as not given)."""
    return Sources(
        diffusion_checkpoint=args.diffusion_checkpoint,
        classifier_checkpoint=getattr(args, "classifier_checkpoint", None),
        calibration=getattr(args, "calibration", None),
        data=args.data,
        data_seed=getattr(args, "data_seed", 0),
        device=args.device,
    )


def _overrides(args) -> Overrides:
    """The preset overrides the command's flags give (flags a command lacks count as not given)."""
    get = lambda name: getattr(args, name, None)
    methods = get("methods")
    return Overrides(
        num_samples=get("num_samples") if args.command != "calibrate" else None,
        batch_size=get("batch_size"),
        num_levels=get("num_levels"),
        seeds=get("seeds"),
        methods=None if methods is None else tuple(Method.parse(m) for m in methods),
        t_sweep=get("t_sweep") or (),
        attacks=get("attacks"),
        eps=get("eps"),
        step_size=get("step_size"),
        iterations=get("iterations"),
        eot=get("eot"),
        surrogate_steps=get("surrogate_steps"),
        t_star=get("t_star"),
        attack_seeds=get("attack_seeds"),
        l2_step=get("l2_step"),
        bpda_schedule=get("bpda_schedule"),
        linear_batch_attack=get("linear_batch_attack"),
        linear_batch_eval=get("linear_batch_eval"),
        scores_per_vote=None if get("vote_scores") is None else get("vote_scores") == "per-vote",
    )


def eval_request(args) -> EvalRequest:
    """`ssni eval`'s arguments as a request."""
    return EvalRequest(
        preset=args.preset,
        sources=_sources(args),
        overrides=_overrides(args),
        tau=args.tau,
        network_batch=args.network_batch,
        out=args.out,
        smoke=args.smoke,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        save_adversarial=args.save_adversarial,
    )


def purify_request(args) -> PurifyRequest:
    """`ssni purify`'s arguments as a request."""
    return PurifyRequest(
        out=args.out,
        preset=args.preset,
        sources=_sources(args),
        overrides=_overrides(args),
        images=args.input,
        scores=args.scores,
        png=args.png,
        method=Method.parse(args.method),
        seed=args.seed,
        tau=args.tau,
        network_batch=args.network_batch,
    )


def calibrate_request(args) -> CalibrateRequest:
    """`ssni calibrate`'s arguments as a request."""
    return CalibrateRequest(
        out=args.out,
        preset=args.preset,
        sources=_sources(args),
        overrides=_overrides(args),
        images=args.input,
        num_samples=args.num_samples,
        seed=args.seed,
        tau=args.tau,
        adversarial=args.adversarial,
    )


def _cmd_eval(args) -> int:
    from ssni.eval.commands import prepare_eval
    from ssni.eval.distributed import close_world, init_world
    from ssni.eval.report import markdown_table, summarize
    from ssni.eval.runner import run_eval

    start = time.perf_counter()
    request = eval_request(args)
    config, backend, data, device = prepare_eval(request)
    world = init_world(device)
    try:
        if world.is_main and not args.json:
            _print_plan(config, data, device)
        final = run_eval(config, backend, data, world, log=lambda s: print(s, file=sys.stderr))
    finally:
        close_world(world)
    if final is None:
        return 0
    summary = summarize(final)
    wall = time.perf_counter() - start
    if args.json:
        print(json.dumps({**summary.to_json(), "results": str(config.out), "wall_seconds": round(wall, 1)}, indent=2))
    else:
        print(markdown_table(summary))
        print(f"records: {config.out}   wall time: {wall:.0f} s   (report: ssni report {config.out})")
    return 0


def _print_plan(config, data, device: str) -> None:
    p = config.preset
    attacks = "".join(f"\n    {a.describe()}" for a in p.attacks) or " none"
    stages = "+".join(str(t) for t, _ in p.purifier.stages)
    surrogate = "+".join(str(n) for _, n in p.purifier.surrogate_stages)
    print(
        f"ssni eval {p.name}: {data.labels.shape[0]} images, seeds {','.join(map(str, p.seeds))}, "
        f"methods {','.join(map(str, p.methods))}, device {device}\n"
        f"  purifier {p.purifier.host} t*={stages}, surrogate steps {surrogate}, EPS levels {p.num_levels}\n"
        f"  attacks:{attacks}",
        file=sys.stderr,
    )
    if p.demo_note:
        print(f"  note: {p.demo_note}", file=sys.stderr)


def _cmd_purify(args) -> int:
    from ssni.eval.commands import purify_images

    written = purify_images(purify_request(args))
    print(f"purified images: {written.images}\nscore norms and t: {written.scores}")
    if written.png is not None:
        print(f"PNGs: {written.png}")
    return 0


def _cmd_calibrate(args) -> int:
    from ssni.eval.commands import calibrate_files

    path, text = calibrate_files(calibrate_request(args))
    print(text)
    print(f"calibration: {path}")
    return 0


def _cmd_report(args) -> int:
    from ssni.eval.commands import report_files
    from ssni.eval.report import markdown_table

    md, summary = report_files(ReportRequest(results=args.results, out_dir=args.out_dir))
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print(markdown_table(summary))
        print(f"report: {md}")
    return 0


def _cmd_train(args) -> int:
    from ssni.zoo.mnist import train

    entry = train.train_diffusion_main if args.command == "train-diffusion" else train.train_classifier_main
    return int(entry(args.args) or 0)


COMMANDS = {
    "eval": _cmd_eval,
    "purify": _cmd_purify,
    "calibrate": _cmd_calibrate,
    "report": _cmd_report,
    "train-diffusion": _cmd_train,
    "train-classifier": _cmd_train,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ssni` command. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in TRAIN_COMMANDS:  # every flag belongs to the trainer's own parser
        args = argparse.Namespace(command=argv[0], args=argv[1:], debug=False)
    else:
        args = parser.parse_args(argv or ["eval"])
    debug = args.debug or os.environ.get("SSNI_DEBUG") == "1"
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"ssni: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("ssni: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
