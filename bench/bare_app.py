"""The "bare" server of bench/throughput.py: FastAPI with the one route, nothing else.

Served by uvicorn with the same settings as the generated service (see throughput.py).
A benchmark reference only: the template never uses this file.
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}
