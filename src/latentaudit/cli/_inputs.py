"""Reading a command's inputs: the metadata table, NIfTI folders, saved embeddings."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ConfigError, DataError
from ..pipeline import check_metadata

__all__ = ["data_provenance", "embeddings_folder", "load_nifti", "read_metadata"]

logger = logging.getLogger("latentaudit.cli")


def read_metadata(config: dict):
    """The ``--metadata`` table (None without one), its id column and types checked."""
    from ..data._base import read_table

    data = config["data"]
    if not data["metadata"]:
        return None
    path = Path(data["metadata"])
    if not path.is_file():
        raise DataError(f"metadata file {str(path)!r} does not exist; check --metadata")
    table = read_table(path, data["id_column"])
    id_column = data["id_column"]
    if id_column not in table.columns:
        raise DataError(
            f"metadata file {path.name!r} has no id column {id_column!r}; its columns are "
            f"{', '.join(map(str, table.columns))}; name the id column with --id-column")
    check_metadata(table, id_column=id_column, source=f"metadata file {path.name!r}")
    return table


def load_nifti(config: dict, *, verbose: bool):
    """The ``--images`` folder as a :class:`~latentaudit.data.NiftiDataset`."""
    from ..data import NiftiDataset

    data = config["data"]
    if not data["images"]:
        raise ConfigError("no images given: pass --images FOLDER (a folder of NIfTI files) "
                          "or set data.images in the config")
    folder = Path(data["images"])
    if not folder.exists():
        raise DataError(f"image folder {str(folder)!r} does not exist; check --images")
    metadata = read_metadata(config)
    dataset = NiftiDataset(
        folder, metadata=metadata, id_column=data["id_column"],
        spatial_dims=data["spatial_dims"], slice_axis=data["slice_axis"],
        n_slices=data["n_slices"], size=data["size"], on_error=data["on_error"],
        random_state=config["seed"], verbose=verbose)
    if len(dataset.skipped):
        logger.warning("left out %d file(s) or table row(s) (on_error='skip'); first: %s",
                       len(dataset.skipped), dataset.skipped.iloc[0].to_dict())
    return dataset


def data_provenance(config: dict, dataset) -> dict:
    """What a run read: the folders, the number of items and subjects, what was skipped."""
    data = config["data"]
    out = {"images": str(Path(data["images"]).resolve()) if data["images"] else None,
           "metadata": str(Path(data["metadata"]).resolve()) if data["metadata"] else None,
           "n_items": len(dataset), "n_subjects": len(dataset.subjects),
           "image_shape": list(dataset.image_shape), "id_column": data["id_column"]}
    if len(getattr(dataset, "skipped", [])):
        out["skipped"] = dataset.skipped.to_dict("records")
    return out


def embeddings_folder(path: str | None, command: str, what: str = "--embeddings") -> Path:
    """The folder holding ``embeddings.json`` (an embed run's output folder works too)."""
    if not path:
        raise ConfigError(f"'latentaudit {command}' needs saved embeddings: pass {what} DIR "
                          f"(the output of 'latentaudit embed')")
    folder = Path(path)
    if not folder.exists():
        raise DataError(f"embeddings folder {str(folder)!r} does not exist; check {what}")
    if not (folder / "embeddings.json").is_file() and (
            folder / "embeddings" / "embeddings.json").is_file():
        folder = folder / "embeddings"
    return folder
