"""The process work pool `vigia` that `prefect deploy --all` sends prefect.yaml to and `vigia worker`s take runs from."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.workers.process import ProcessWorker

POOL = "vigia"


async def ensure_work_pool(name: str = POOL) -> str:
    """Create the process work pool `name` unless it exists (a pool edited in the UI is kept); return one line saying which."""
    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
            return f"work pool {name}: {pool.type}, kept"
        except ObjectNotFound:
            pass
        try:
            await client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template())
            )
        except ObjectAlreadyExists:  # another setup made it meanwhile
            return f"work pool {name}: process, kept"
    return f"work pool {name}: created (process); `prefect --no-prompt deploy --all` sends prefect.yaml to it, `vigia worker` runs it"
