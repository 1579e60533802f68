"""Dependencies every router shares: the database and the settings of the running app.

They are `async def` although they do no I/O: FastAPI runs a plain `def` dependency in a worker
thread, and a hop to a thread per dependency cost more than most requests' own work."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.db import Database


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
