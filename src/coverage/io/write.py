"""Writing outputs atomically, by extension; text bound for spreadsheets kept inert."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from ..errors import InputError, OutputError, OutputExistsError
from ._common import PathLike, log

__all__ = ["TABLE_FORMATS", "atomic", "check_distinct", "check_writable", "write_table"]

#: Extensions :func:`write_table` writes (the first three also without geometry).
TABLE_FORMATS = (".csv", ".xlsx", ".parquet", ".gpkg", ".geojson", ".json", ".fgb", ".shp")


def check_writable(path: PathLike) -> None:
    """Make the folder of an output and prove it takes a file, before any work is done.

    Raises
    ------
    OutputError
        When the folder cannot be made (a part of it is a file, a read-only or virtual
        file system) or written to; the message names the folder and the fix.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the name atomic() writes first: the probe proves the file system takes it too
        fd, probe = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix,
                                     dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _not_writable(path, exc) from None


def check_distinct(paths: Iterable[PathLike | None]) -> None:
    """Refuse two outputs of one run at the same path: the second would replace the first.

    Raises
    ------
    OutputError
        Naming the path given twice.
    """
    seen: dict[Path, PathLike] = {}
    for p in paths:
        if p is None:
            continue
        key = Path(os.path.abspath(p))
        if key in seen:
            raise OutputError(f"{seen[key]} and {p} are the same file, given for two outputs "
                              "of one run: the second would replace the first; give each "
                              "output its own path")
        seen[key] = p


def _not_writable(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.ENAMETOOLONG:
        return OutputError(
            f"cannot write {path}: its name is too long for the file system "
            f"({len(os.fsencode(path.name))} bytes; a name takes at most "
            f"{_name_max(path.parent)} bytes, and the file is first written under its name "
            "plus 10); choose a shorter file name (-o, or [outputs] of the run file)")
    blocker = next((p for p in (path.parent, *path.parent.parents)
                    if p.exists() and not p.is_dir()), None)
    why = (f"{blocker} is a file, not a folder" if blocker is not None
           else f"its folder {path.parent} cannot be made or written to "
                f"({exc.strerror or exc})")
    return OutputError(f"cannot write {path}: {why}; choose an output path in a folder you "
                       "can write to (-o, or [outputs] of the run file)")

def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` takes (255 if unknown)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf on Windows
        return 255


@contextlib.contextmanager
def atomic(path: PathLike, *, overwrite: bool) -> Iterator[str]:
    """A temporary path beside ``path``, renamed over it only when the block succeeds.

    Raises
    ------
    OutputExistsError
        When ``path`` exists and ``overwrite`` is false (checked before any work).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix,
                                   dir=path.parent)
    except OSError as exc:
        raise _not_writable(path, exc) from None
    os.close(fd)
    os.unlink(tmp)  # GDAL drivers refuse to create over an existing file
    # a Shapefile is several files (.shp, .shx, .dbf, .prj, .cpg): all move together
    tmp_stem = Path(tmp).with_suffix("")
    try:
        yield tmp
        for part in sorted(tmp_stem.parent.glob(tmp_stem.name + ".*")):
            if part != Path(tmp):
                os.replace(part, path.with_suffix(part.suffix))
        os.replace(tmp, path)
    except BaseException:
        for part in tmp_stem.parent.glob(tmp_stem.name + ".*"):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        raise


def _write_xlsx(table: pd.DataFrame, tmp: str, sheet: str) -> None:
    """XLSX with every text cell stored as text, so ``=HYPERLINK(...)`` stays a string."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet[:31])
    ws.append([str(c) for c in table.columns])
    for row in table.itertuples(index=False, name=None):
        cells = []
        for v in row:
            if v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT:
                cells.append(None)
            elif isinstance(v, str):
                from openpyxl.cell import WriteOnlyCell

                cell = WriteOnlyCell(ws, value=v)
                cell.data_type = "s"  # never "f" (formula), whatever the text starts with
                cells.append(cell)
            elif isinstance(v, pd.Timestamp):
                cells.append(v.tz_convert(None).to_pydatetime() if v.tzinfo else
                             v.to_pydatetime())
            else:
                cells.append(v.item() if hasattr(v, "item") else v)
        ws.append(cells)
    wb.save(tmp)


def _warn_shapefile_limits(table: gpd.GeoDataFrame, path: Path) -> None:
    """Warn of what a Shapefile cannot hold: names past 10 characters, text past 254 bytes."""
    from ._common import warn_repair

    cols = [str(c) for c in table.columns if c != table.geometry.name]
    long_names = [c for c in cols if len(c.encode()) > 10]
    text = [c for c in cols if table[c].dtype == object or pd.api.types.is_string_dtype(
        table[c].dtype)]
    long_text = [c for c in text
                 if table[c].dropna().astype(str).map(lambda v: len(v.encode())).gt(254).any()]
    if long_names or long_text:
        what = ([f"column names cut to 10 characters ({', '.join(long_names[:6])}"
                 f"{' ...' if len(long_names) > 6 else ''})"] if long_names else [])
        what += ([f"text cut to 254 bytes in {', '.join(long_text)}"] if long_text else [])
        warn_repair(f"{path}: a Shapefile keeps {' and '.join(what)}; write .gpkg (or "
                    ".geojson, .parquet) to keep every column as named")


def write_table(gdf: gpd.GeoDataFrame | pd.DataFrame, path: PathLike, *,
                overwrite: bool = False, layer: str | None = None) -> Path:
    """Write a table by the extension of ``path``, atomically (temporary file, then rename).

    ``.gpkg``, ``.geojson``, ``.fgb``, ``.shp`` and ``.parquet`` keep geometry (mixed
    Polygon/MultiPolygon promoted to MultiPolygon where the format needs one type);
    ``.csv`` and ``.xlsx`` replace it with ``lon``/``lat`` (WGS84) of a point inside each
    shape. XLSX cells holding text are stored as text, so a name like ``=HYPERLINK(...)``
    is never a formula. CSV is UTF-8 and written as is (data, not a spreadsheet).

    Raises
    ------
    OutputExistsError
        When ``path`` exists and ``overwrite`` is false.
    InputError
        For an unknown extension, or geometry formats asked of a table without geometry.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in TABLE_FORMATS:
        raise InputError(f"{path}: unknown output format {ext!r}; use .gpkg, .geojson, "
                         ".parquet, .csv or .xlsx")
    table = gdf
    if ext in (".csv", ".xlsx") and isinstance(gdf, gpd.GeoDataFrame):
        pts = gdf.geometry.representative_point().to_crs(4326)
        table = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        if "lon" not in table.columns:
            table["lon"] = pts.x.round(6).to_numpy()
            table["lat"] = pts.y.round(6).to_numpy()
    if ext in (".gpkg", ".geojson", ".json", ".fgb", ".shp") and not isinstance(
            table, gpd.GeoDataFrame):
        raise InputError(f"{path}: a {ext} output needs geometry; write .csv or .xlsx")
    if ext == ".shp":
        _warn_shapefile_limits(table, path)
    with atomic(path, overwrite=overwrite) as tmp:
        if ext == ".csv":
            table.to_csv(tmp, index=False, encoding="utf-8")
        elif ext == ".xlsx":
            _write_xlsx(table, tmp, layer or path.stem)
        elif ext == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            kwargs = {"layer": layer or path.stem} if ext == ".gpkg" else {}
            types = set(table.geom_type.dropna())
            if types and types <= {"Polygon", "MultiPolygon"} and len(types) == 2:
                kwargs["promote_to_multi"] = True
            with warnings.catch_warnings():  # GDAL's own, said above for a Shapefile
                warnings.filterwarnings("ignore", ".*(truncated|laundered)", RuntimeWarning)
                pyogrio.write_dataframe(table, tmp, **kwargs)
    log.info("wrote %s (%d rows)", path, len(gdf))
    return path
