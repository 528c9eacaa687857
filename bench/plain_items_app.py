"""The "plain" server of bench/items_read.py: a page of items behind a JWT, tutorial style.

The same read as the generated service's `GET /api/v1/items`, written the way the FastAPI and
SQLAlchemy tutorials write it: a module-level async engine and `async_sessionmaker`, a session
per request from a `yield` dependency, an `OAuth2PasswordBearer` token checked by one
`jwt.decode`, one count query and one ORM query (`select` + `scalars`), and a pydantic
`response_model` built from the ORM objects (`from_attributes`). No hardening: no middleware,
no rate limit, no request ids, no access log, no security headers, no problem+json.

It is a reference and stays written this way: do not optimise it, or the ratio measured
against it stops meaning anything. Served by uvicorn with the generated service's settings
(see throughput.py); configured by the environment: DATABASE_URL (an async SQLAlchemy URL),
JWT_SECRET_KEY, JWT_AUDIENCE, JWT_ISSUER. The template never uses this file.
"""

import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DATABASE_URL = os.environ["DATABASE_URL"]
SECRET_KEY = os.environ["JWT_SECRET_KEY"]
AUDIENCE = os.environ.get("JWT_AUDIENCE", "my-service")
ISSUER = os.environ.get("JWT_ISSUER", "my-service")
ALGORITHM = "HS256"

engine = create_async_engine(DATABASE_URL)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[ItemRead]
    total: int
    limit: int
    offset: int


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token")


async def get_current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> str:
    try:
        payload = jwt.decode(
            token, SECRET_KEY, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER
        )
    except jwt.InvalidTokenError:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Could not validate credentials",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    return str(payload["sub"])


CurrentUser = Annotated[str, Depends(get_current_user)]

app = FastAPI()


@app.get("/api/v1/items", response_model=ItemPage)
async def read_items(
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, object]:
    total = (await session.execute(select(func.count()).select_from(Item))).scalar_one()
    result = await session.execute(select(Item).order_by(Item.id).offset(offset).limit(limit))
    items = result.scalars().all()
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}
