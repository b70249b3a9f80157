"""Operating Roost: the retraining schedule, the new-data sensor, the run-failure sensor.

Schedule and new-data sensor come from params.yaml's ``automation`` section and start switched
off unless it says otherwise (switch them on in the UI's Automation tab, or in params). Their
runs carry the ``roost/experiment`` tag: each ends as a DVC experiment (``assets.history``). The
run-failure sensor is on: it only writes a summary to the daemon's log.
"""

from __future__ import annotations

import hashlib

import dagster as dg

from assets.history import EXPERIMENT_TAG, experiment_name
from ml.landing import AutomationConfig, scan_landing
from ml.paths import Paths


def _status(enabled: bool) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED


def retrain_schedule(job, cfg: AutomationConfig) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="retrain",
        job=job,
        cron_schedule=cfg.retrain_cron,
        execution_timezone=cfg.timezone,
        default_status=_status(cfg.schedule_enabled),
        description="Retrain the whole chain on the configured inputs (automation.retrain_cron); "
        "the run ends as a DVC experiment named retrain-<time>.",
    )
    def retrain(context: dg.ScheduleEvaluationContext):
        name = f"retrain-{context.scheduled_execution_time:%Y%m%d-%H%M}"
        return dg.RunRequest(run_key=name, tags={EXPERIMENT_TAG: name})

    return retrain


def landing_sensor(job, cfg: AutomationConfig, root: Paths) -> dg.SensorDefinition:
    folder = root.resolve(cfg.landing)

    @dg.sensor(
        name="new_data",
        job=job,
        minimum_interval_seconds=cfg.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING if cfg.sensor_enabled else dg.DefaultSensorStatus.STOPPED,
        description=f"A batch (manifest or photo folder) landed in, changed in or removed from {cfg.landing} "
        "refreshes the chain on the whole corpus (the configured source plus every batch).",
    )
    def new_data(context: dg.SensorEvaluationContext):
        arrivals, gone, cursor = scan_landing(folder, context.cursor, cfg.settle_s)
        if arrivals or gone:
            changes = [f"{a.name}:{a.signature}" for a in arrivals] + [f"{name}:removed" for name in gone]
            label = "-".join([a.name for a in arrivals] + [f"{name}-removed" for name in gone])
            yield dg.RunRequest(
                run_key="|".join(changes),
                tags={
                    "roost/landing": ", ".join(a.name for a in arrivals) or "-",
                    "roost/removed": ", ".join(gone) or "-",
                    EXPERIMENT_TAG: experiment_name(f"landing-{label[:80]}-{_digest(changes)}"),
                },
            )
        else:
            yield dg.SkipReason(f"nothing new in {folder}")
        context.update_cursor(cursor)

    return new_data


def _digest(changes: list[str]) -> str:
    return hashlib.sha256("\n".join(changes).encode()).hexdigest()[:8]


@dg.run_failure_sensor(name="run_failure_summary", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_summary(context: dg.RunFailureSensorContext) -> None:
    """One clear log line per failed run: which step/asset, the error, where the logs are."""
    run = context.dagster_run
    failures = []
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        message = error.message.strip().splitlines()[-1] if error and error.message else "unknown error"
        failures.append(f"{event.step_key}: {message}")
    where = f"the run's page /runs/{run.run_id} in the Dagster UI (compute logs under $DAGSTER_HOME/storage)"
    context.log.error(
        f"Roost run {run.run_id} ({run.job_name}) failed: "
        + ("; ".join(failures) or context.failure_event.message or "no step failed")
        + f". Logs: {where}"
    )
