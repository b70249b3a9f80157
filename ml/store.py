"""DuckDB files: each asset writes its own, downstream assets open them read-only."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd


def write_tables(path: Path, tables: dict[str, pd.DataFrame]) -> Path:
    """Write DataFrames as tables of a fresh DuckDB file, atomically replacing ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with duckdb.connect(str(tmp)) as con:
        for name, df in tables.items():
            con.register("_frame", df)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _frame')
            con.unregister("_frame")
    os.replace(tmp, path)
    return path


def read_table(path: Path, table: str, where: str = "") -> pd.DataFrame:
    """Read one table from an upstream asset's DuckDB file, read-only."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: materialize its asset first")
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{table}" {where}').df()


def list_tables(path: Path) -> list[str]:
    """The tables of an asset's DuckDB file."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: materialize its asset first")
    with duckdb.connect(str(path), read_only=True) as con:
        return [row[0] for row in con.execute("SHOW TABLES").fetchall()]
