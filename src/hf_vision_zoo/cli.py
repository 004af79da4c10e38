"""`hf-vision-zoo`: list and inspect the zoo's models, train, evaluate, predict, convert checkpoints, write model cards
and publish checkpoints to the Hugging Face Hub.

Every sub-command has its own `--help`. User errors (a missing file, an unknown model, an incomplete checkpoint) print
one message on stderr and exit with status 1; `argparse` usage errors exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
FORWARDED = ("train", "evaluate", "pretrain")  # sub-commands whose arguments belong to hf_vision_zoo.training


class UserError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from .conversion.common import ConversionError

    return (UserError, ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, PermissionError, ConversionError, HfHubHTTPError, OfflineModeIsEnabled,
            ConnectionError)


def _message(err: BaseException) -> str:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return f"{err}\n(publishing needs the network: unset HF_HUB_OFFLINE for this command)"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__


# --------------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-vision-zoo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"hf_vision_zoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("list", help="table of the registered model variants", formatter_class=raw,
                       description="List the registered variants (timm-style names) with their architecture, "
                                   "training data, published top-1, parameters, input size and licence.",
                       epilog="examples:\n  hf-vision-zoo list\n  hf-vision-zoo list 'swin_base*'\n"
                              "  hf-vision-zoo list tiny --json")
    p.add_argument("pattern", nargs="?", help="shell-style pattern ('swin_*_224*'); a plain word matches anywhere "
                                              "in the name")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-params", action="store_true", help="skip counting parameters (faster)")

    p = sub.add_parser("info", help="details of a variant or architecture", formatter_class=raw,
                       description="Show a variant's (or architecture's) paper, official code, licence, training "
                                   "data and published accuracy, preprocessing, config and parameter count.",
                       epilog="examples:\n  hf-vision-zoo info swin_tiny_patch4_window7_224.ms_in1k\n"
                              "  hf-vision-zoo info swin")
    p.add_argument("name", help="variant name (see `hf-vision-zoo list`) or architecture name")
    p.add_argument("--json", action="store_true", help="print JSON")

    for name, what, extra in (
            ("train", "hf_vision_zoo.training.main",
             "; --recipe brainscore_crossvit18: rotation invariance + fast adversarial training"),
            ("evaluate", "hf_vision_zoo.training.evaluate_main",
             "; --pgd-steps 10 --adv-epsilon 2/255 adds robust top-1 under PGD"),
            ("pretrain", "hf_vision_zoo.training.pretrain_main",
             "; self-supervised pre-training (e.g. --model mae), then `train --pretrained DIR --linear-probe`")):
        task = "a self-supervised model" if name == "pretrain" else "a classifier"
        p = sub.add_parser(name, add_help=False, help=f"{name} {task} (arguments go to {what}; "
                                                        f"`hf-vision-zoo {name} --help` lists them{extra})")
        p.add_argument("args", nargs=argparse.REMAINDER)

    p = sub.add_parser("predict", help="classify image files or folders with a checkpoint", formatter_class=raw,
                       description="Run pipeline('image-classification', model=MODEL_DIR) over image files and "
                                   "folders (searched recursively) and print the top-k labels per image. Unreadable "
                                   "or corrupt images are reported on stderr and the exit status is 1; the others "
                                   "are still classified.",
                       epilog="examples:\n  hf-vision-zoo predict ./swin-fmnist shoe.png photos/\n"
                              "  hf-vision-zoo predict ./swin-fmnist photos/ --top-k 3 --json")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a saved checkpoint folder (or a Hub id when online)")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files and/or folders of images")
    p.add_argument("--top-k", type=int, default=5, help="labels to show per image (default 5)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    p.add_argument("--json", action="store_true", help="print JSON: one object per image")

    p = sub.add_parser("convert", help="convert an official/timm/transformers checkpoint to a zoo folder",
                       formatter_class=raw,
                       description="Convert a checkpoint file into a folder with config.json, model.safetensors and "
                                   "preprocessor_config.json (loads with AutoModelForImageClassification after "
                                   "`import hf_vision_zoo`). Zero missing and zero unexpected keys are required; "
                                   "nothing is written at --output if the conversion fails.",
                       epilog="examples:\n  hf-vision-zoo convert swin --source official --checkpoint "
                              "swin_tiny_patch4_window7_224.pth \\\n"
                              "      --variant swin_tiny_patch4_window7_224.ms_in1k --output swin-tiny\n"
                              "  hf-vision-zoo convert swin --source timm --checkpoint "
                              "model.safetensors --image-size 32 --output out\n"
                              "Without --variant/--config the hyper-parameters are read off the checkpoint.")
    p.add_argument("arch", help=f"architecture ({', '.join(_converter_names())})")
    p.add_argument("--source", required=True, help=f"checkpoint format: {', '.join(_source_names())}")
    p.add_argument("--checkpoint", required=True, help=".safetensors, .pth/.pt or .bin state dict")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--variant", help="registered variant, e.g. swin_tiny_patch4_window7_224.ms_in1k")
    group.add_argument("--config", help="config.json of the source model (transformers) or of a zoo model")
    p.add_argument("--image-size", type=int, help="input resolution, when it is not the config's")
    p.add_argument("--output", required=True, help="folder to write (must not exist or be empty, "
                                                   "unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")

    p = sub.add_parser("card", help="write the model card (README.md) of a checkpoint folder", formatter_class=raw,
                       description="Write MODEL_DIR/README.md: metadata (library, pipeline tag, licence, paper, "
                                   "model-index results), architecture, preprocessing, training set-up, results, "
                                   "usage and citation. `train` writes it for you; use this for converted weights.",
                       epilog="example:\n  hf-vision-zoo card swin-tiny --dataset imagenet-1k --metric top1=81.2 \\\n"
                              "      --variant swin_tiny_patch4_window7_224.ms_in1k --training-args "
                              "'{\"source\": \"official release\"}'")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--dataset", required=True, help="dataset name (a Hub dataset id goes into the metadata)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE",
                   help="a measured metric, e.g. top1=0.912 (repeatable)")
    p.add_argument("--metrics-json", help="JSON file with {name: value} metrics (e.g. the run's eval results)")
    p.add_argument("--training-args", default="{}", help="JSON object, or a JSON file, of the training settings")
    p.add_argument("--variant", help="registered variant the model was built from")

    p = sub.add_parser("publish", help="upload a complete checkpoint folder to the Hub", formatter_class=raw,
                       description="Check that MODEL_DIR is a complete checkpoint (config.json, model.safetensors, "
                                   "preprocessor_config.json, README.md card; no pickle files), create the Hub "
                                   "repo if needed and upload the folder in one commit. Prints the commit URL. "
                                   "Uses HF_TOKEN / `hf auth login` and HF_ENDPOINT.",
                       epilog="example:\n  hf-vision-zoo publish ./swin-fmnist --repo-id my-org/swin-tiny-fmnist "
                              "--private")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="target model repo")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", help="branch to commit to (created if missing; default main)")
    p.add_argument("--message", help="commit message")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")

    p = sub.add_parser("index", help="add/update a released checkpoint in model_cards/index.yaml",
                       formatter_class=raw,
                       description="Record a complete checkpoint folder in model_cards/index.yaml (one entry per "
                                   "released checkpoint: architecture, variant, dataset, metrics, params, paper, "
                                   "card) and copy its card to model_cards/NAME.md.",
                       epilog="example:\n  hf-vision-zoo index ./swin-fmnist --name swin_tiny_fmnist "
                              "--repo-id my-org/swin-tiny-fmnist")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--name", required=True, help="entry name (letters, digits, . _ -)")
    p.add_argument("--repo-id", help="Hub repo the weights are published in")
    p.add_argument("--model-cards-dir", help="default: the repository's model_cards/ (or ./model_cards)")
    return parser


def _converter_names() -> list[str]:
    from .conversion import CONVERTERS

    return sorted(CONVERTERS)


def _source_names() -> list[str]:
    from .conversion import CONVERTERS

    return sorted({s for module in CONVERTERS.values() for s in getattr(module, "SOURCES", ())})


# ------------------------------------------------------------------------------------------------------- commands
def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def cmd_list(args) -> int:
    from . import registry

    pattern = args.pattern
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    names = registry.list_models(pattern)
    if not names:
        raise UserError(f"no registered variant matches {args.pattern!r} (see `hf-vision-zoo list`)")
    rows = []
    for name in names:
        variant = registry.get_variant(name)
        arch = registry.get_architecture(variant.architecture)
        pre = variant.preprocessing
        size = pre.get("crop_size") if pre.get("do_center_crop", True) and pre.get("crop_size") else pre.get("size")
        size = size or {}
        side = size.get("height", size.get("shortest_edge"))
        params = None if args.no_params else registry._count_parameters(name)
        rows.append({"name": name, "architecture": arch.name, "dataset": variant.dataset, "top1": variant.top1,
                     "params": params, "input_size": side, "license": arch.license})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ["name", "arch", "dataset", "top-1", "params", "input", "licence"]
    _print_table([[r["name"], r["architecture"], r["dataset"], f"{r['top1']:.1f}" if r["top1"] else "-",
                   "-" if r["params"] is None else f"{r['params'] / 1e6:.1f}M", r["input_size"] or "-",
                   r["license"]] for r in rows], header)
    print(f"\n{len(rows)} variant(s). Details: hf-vision-zoo info NAME")
    return 0


def cmd_info(args) -> int:
    from . import hub, registry

    name = args.name
    if name in registry.list_models():
        variant = registry.get_variant(name)
        arch = registry.get_architecture(variant.architecture)
        config = registry.get_config(name)
        processor = registry.create_image_processor(name)
        info = {
            "name": name, "architecture": arch.name, "paper": arch.paper, "paper_url": arch.paper_url,
            "official_repo": arch.official_repo, "license": arch.license, "dataset": variant.dataset,
            "top1": variant.top1, "checkpoint": variant.checkpoint, "tasks": sorted(arch.model_classes),
            "params": registry._count_parameters(name),
            "preprocessing": dict(hub.describe_preprocessing(processor.to_dict())),
            "config": {"model_type": config.model_type, **variant.config},
            "notes": variant.notes or None,
        }
    elif name in registry.list_architectures():
        arch = registry.get_architecture(name)
        info = {
            "name": name, "architecture": arch.name, "paper": arch.paper, "paper_url": arch.paper_url,
            "official_repo": arch.official_repo, "license": arch.license, "tasks": sorted(arch.model_classes),
            "config_class": arch.config_class.__name__, "model_type": arch.config_class.model_type,
            "image_processors": {k: v.__name__ for k, v in arch.image_processor_classes.items()},
            "variants": [v for v in registry.list_models() if registry.get_variant(v).architecture == name],
        }
    else:
        import difflib

        known = registry.list_models() + registry.list_architectures()
        close = registry.list_models(f"*{name}*")[:5] or difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(f"unknown model or architecture {name!r}.{hint} (`hf-vision-zoo list` shows them all)")
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if value is None:
            continue
        if key == "preprocessing":
            steps = [f"{step}: {setting}" for step, setting in value.items()]
            print(f"{key:<{width}}  " + ("\n" + " " * (width + 2)).join(steps))
        elif key == "params":
            print(f"{key:<{width}}  {value / 1e6:.2f}M ({value:,})")
        elif key == "top1":
            print(f"{key:<{width}}  {value:.1f}% (published)")
        elif isinstance(value, (dict, list)):
            print(f"{key:<{width}}  {json.dumps(value)}")
        else:
            print(f"{key:<{width}}  {value}")
    return 0


def _forward(command: str, argv: list[str]) -> int:
    try:
        from . import training
    except ImportError as err:
        raise UserError(f"`{command}` needs the hf_vision_zoo.training package, which could not be imported: {err}")
    name = {"train": "main", "evaluate": "evaluate_main", "pretrain": "pretrain_main"}[command]
    entry = getattr(training, name, None)
    if entry is None:
        raise UserError(f"hf_vision_zoo.training has no {name}()")
    result = entry(list(argv))
    return result if isinstance(result, int) else 0


def _collect_images(paths: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    images, errors = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                errors.append((raw, f"folder has no image files ({', '.join(IMAGE_SUFFIXES)})"))
            images.extend(found)
        elif path.is_file():
            images.append(path)
        else:
            errors.append((raw, "no such file or folder"))
    return images, errors


def _open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated files fail here, not inside the pipeline
            return img.copy()
    except UnidentifiedImageError:
        raise ValueError("not an image file (or an unsupported/corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"corrupt or truncated image: {err}") from None


def cmd_predict(args) -> int:
    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    model_dir = Path(args.model_dir)
    if model_dir.exists() and not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} is not a model folder (no config.json)")
    if not model_dir.exists() and (model_dir.is_absolute() or args.model_dir.startswith(".")
                                   or args.model_dir.count("/") != 1):
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    files, errors = _collect_images(args.images)
    loaded = []
    for path in files:
        try:
            loaded.append((path, _open_image(path)))
        except ValueError as err:
            errors.append((str(path), str(err)))
    for path, message in errors:
        print(f"error: {path}: {message}", file=sys.stderr)
    if not loaded:
        raise UserError("no readable images to classify")

    import hf_vision_zoo  # noqa: F401  (registers the zoo's architectures)
    from transformers import pipeline

    try:
        classifier = pipeline("image-classification", model=str(args.model_dir), device=args.device or "cpu")
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"could not load {args.model_dir} as an image-classification model: {_message(err)}")
    outputs = classifier([img for _, img in loaded], top_k=args.top_k, batch_size=args.batch_size)
    results = [{"image": str(path), "predictions": [{"label": o["label"], "score": round(float(o["score"]), 6)}
                                                    for o in out]}
               for (path, _), out in zip(loaded, outputs)]
    if args.json:
        results += [{"image": path, "error": message} for path, message in errors]
        print(json.dumps(results, indent=2))
    else:
        rows = []
        for result in results:
            for rank, pred in enumerate(result["predictions"], 1):
                rows.append([result["image"] if rank == 1 else "", rank, pred["label"], f"{pred['score']:.4f}"])
        _print_table(rows, ["image", "rank", "label", "score"])
    if errors:
        print(f"{len(errors)} input(s) could not be classified (see errors above)", file=sys.stderr)
        return 1
    return 0


def cmd_convert(args) -> int:
    from .conversion import convert_checkpoint

    overrides = {"image_size": args.image_size} if args.image_size else {}
    model = convert_checkpoint(args.arch, args.checkpoint, args.source, args.output, variant=args.variant,
                               config_file=args.config, overwrite=args.overwrite, **overrides)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} ({args.source}) -> {args.output}: {params:,} parameters, "
          f"{model.config.num_labels} labels, 0 missing / 0 unexpected keys")
    print(f"next: hf-vision-zoo card {args.output} --dataset ... --metric top1=...  (a card is needed to publish)")
    return 0


def _json_arg(value: str, what: str):
    path = Path(value)
    text = path.read_text() if value and not value.lstrip().startswith(("{", "[")) and path.is_file() else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{what} is neither valid JSON nor a JSON file: {err}") from None


def cmd_card(args) -> int:
    from . import hub

    metrics = {}
    if args.metrics_json:
        metrics.update(_json_arg(args.metrics_json, "--metrics-json"))
    for item in args.metric:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--metric takes NAME=VALUE, got {item!r}")
        try:
            metrics[key] = float(value)
        except ValueError:
            raise UserError(f"--metric {key}: {value!r} is not a number") from None
    training_args = _json_arg(args.training_args, "--training-args")
    if not isinstance(training_args, dict):
        raise UserError("--training-args must be a JSON object")
    path = hub.write_model_card(args.model_dir, dataset_name=args.dataset, metrics=metrics,
                                training_args=training_args, variant=args.variant)
    print(f"wrote {path}")
    return 0


def cmd_publish(args) -> int:
    from . import hub

    url = hub.publish(args.model_dir, args.repo_id, private=args.private, revision=args.revision, token=args.token,
                      commit_message=args.message)
    print(url)
    return 0


def cmd_index(args) -> int:
    from . import hub

    entry = hub.update_index(args.model_dir, args.name, model_cards_dir=args.model_cards_dir,
                             repo_id=args.repo_id)
    cards = Path(args.model_cards_dir) if args.model_cards_dir else hub.default_model_cards_dir()
    print(f"updated {cards / 'index.yaml'}: {entry['name']} ({entry['architecture']}, {entry['dataset']}, "
          f"{json.dumps(entry['metrics'])}); card {cards / entry['card']}")
    return 0


COMMANDS = {"list": cmd_list, "info": cmd_info, "predict": cmd_predict, "convert": cmd_convert, "card": cmd_card,
            "publish": cmd_publish, "index": cmd_index}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in FORWARDED:
            return _forward(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
        if args.command not in ("predict", "convert"):
            return COMMANDS[args.command](args)
        from transformers.utils import logging as hf_logging

        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no weight-loading/saving bars around one-line results
        try:
            return COMMANDS[args.command](args)
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()
    except SystemExit as exc:  # argparse --help / usage errors, or the training entry points exiting
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    except _user_errors() as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
