"""Department settings (director)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response

from app.deps import AppSettingsDep, IfMatchDep, SessionDep, require
from app.permissions import Actor, Permission
from app.routers.common import api_router, ok_with_etag, with_etag
from app.services import department
from app.services.department import SettingsPatch, SettingsRead

router = api_router("/settings", "settings")
Director = Annotated[Actor, Depends(require(Permission.SETTINGS_MANAGE))]


@router.get("", summary="The department's settings", responses=ok_with_etag())
async def settings_get(
    session: SessionDep, _: Director, settings: AppSettingsDep, response: Response
) -> SettingsRead:
    current = await department.read(session, settings.currency)
    with_etag(response, current.version, current.unversioned())
    return current


@router.patch("", summary="Replace sections of the department's settings", responses=ok_with_etag())
async def settings_update(
    session: SessionDep,
    _: Director,
    settings: AppSettingsDep,
    body: SettingsPatch,
    expected: IfMatchDep,
    response: Response,
) -> SettingsRead:
    await department.update(session, body.model_dump(exclude_unset=True), expected)
    updated = await department.read(session, settings.currency)
    with_etag(response, updated.version, updated.unversioned())
    return updated
