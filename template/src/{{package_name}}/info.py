"""`GET /api/v1/info`: the service's name and version, for clients and smoke tests."""

from fastapi import APIRouter, Request
from pydantic import BaseModel

from . import __version__

router = APIRouter(prefix="/api/v1/info", tags=["info"])


class ServiceInfo(BaseModel):
    name: str
    version: str


@router.get("")
async def service_info(request: Request) -> ServiceInfo:
    return ServiceInfo(name=request.app.state.settings.app_name, version=__version__)
