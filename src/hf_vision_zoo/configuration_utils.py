"""Validation snippets shared by the zoo configs' `validate_architecture` / `__post_init__`: each raises a
`ValueError` naming the offending field."""


def height_width(size) -> tuple[int, int]:
    """`image_size` (an int or `[height, width]`) as `(height, width)`."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def check_image_size_pair(image_size) -> None:
    """An `image_size` given as a list must be `[height, width]`."""
    if isinstance(image_size, list) and len(image_size) != 2:
        raise ValueError(f"image_size must be an int or [height, width], got {image_size}")


def check_positive(config, *names: str) -> None:
    """Every named field is an int >= 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be a positive int, got {getattr(config, name)}")


def check_probabilities(config, *names: str) -> None:
    """Every named field (dropout / drop-path rate) lies in [0, 1)."""
    for name in names:
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(config, name)}")


def check_stage_depths(config, name: str = "depths") -> int:
    """`name` is a non-empty list of positive block counts; returns the number of stages."""
    depths = getattr(config, name)
    if not depths or any(d < 1 for d in depths):
        raise ValueError(f"{name} must be a non-empty list of positive ints, got {depths}")
    return len(depths)


def check_per_stage_lengths(config, names, stages: int, reference: str = "depths") -> None:
    """Every named per-stage list has one entry per stage (as many as `reference`)."""
    for name in names:
        if len(getattr(config, name)) != stages:
            raise ValueError(f"{name} has {len(getattr(config, name))} entries but {reference} has {stages}; "
                             f"give one per stage")


def set_backbone_stages(config, num_stages: int, kwargs: dict) -> None:
    """Name the stem and the `num_stages` stages (`stem`, `stage1`, ...) and take `out_indices` / `out_features`
    out of `kwargs` for the backbone (call in `__post_init__` before `super().__post_init__(**kwargs)`)."""
    config.stage_names = ["stem"] + [f"stage{i}" for i in range(1, num_stages + 1)]
    config.set_output_features_output_indices(
        out_indices=kwargs.pop("out_indices", None), out_features=kwargs.pop("out_features", None)
    )


def prepare_stage_config(config, list_fields, kwargs: dict, depths: str = "depths", widths: str | None = "embed_dims"
                         ) -> None:
    """The `__post_init__` steps of a hierarchical (per-stage) config, before `super().__post_init__(**kwargs)`:
    `list_fields` and `image_size` as lists (JSON round-trips), `num_layers` from `depths`, `hidden_size` = the last
    stage's width (`widths`; None: the config sets it itself) and the backbone stages (`set_backbone_stages`)."""
    for name in list_fields:
        setattr(config, name, list(getattr(config, name)))
    if isinstance(config.image_size, (list, tuple)):
        config.image_size = list(config.image_size)
    config.num_layers = len(getattr(config, depths))
    if widths is not None:
        config.hidden_size = int(getattr(config, widths)[-1]) if getattr(config, widths) else 0
    set_backbone_stages(config, config.num_layers, kwargs)
