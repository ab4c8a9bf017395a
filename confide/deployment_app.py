"""The deployment engine's ServerApp (``[tool.flwr.app.components] serverapp``).

It composes the thin ServerApp (:func:`confide.server.server_app.run_deployment`) with the same
run-directory finaliser as ``confide simulate`` (:func:`confide.rundir.finalise_run`) and the
run report, so a run started with ``confide deploy`` leaves what a simulation leaves:
``metrics.json``, ``curves.json``, ``report.html`` and a run-ledger record. The coordinator
holds no rows and no node's budget ledger: the final scores are the nodes' federated evaluation
of the last round, and the ε recorded per node is the last ε each node reported.
"""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from confide.reports import write_report
from confide.rundir import (
    federated_evaluation,
    finalise_analysis,
    finalise_run,
    finalise_vertical,
    last_epsilons,
    run_ledger_path,
)
from confide.server.analysis_app import (
    AnalysisDeploymentRun,
    analysis_record,
    is_analysis_run,
    run_analysis_deployment,
)
from confide.server.server_app import DeploymentRun, run_deployment
from confide.server.vertical_app import (
    VerticalDeploymentRun,
    is_vertical_run,
    run_vertical_deployment,
)
from confide.simulations.reproducibility import reproducibility_record

__all__ = [
    "app",
    "finalise_analysis_deployment",
    "finalise_deployment",
    "finalise_vertical_deployment",
]


def finalise_deployment(run: DeploymentRun) -> dict:
    """Finish a deployment run's directory through the shared finaliser; returns the metrics."""
    history = run.recorder.to_dict()
    completed = run.outcome.status == "completed"
    return finalise_run(
        run.run_dir,
        job=run.job,
        run_id=run.run_id,
        outcome=run.outcome.to_dict(),
        history=history,
        evaluation=federated_evaluation(history, run.recorder.last_histogram())
        if completed
        else None,
        epsilon=last_epsilons(history),
        policy_sha256={},  # node policies stay at the nodes; the coordinator never sees them
        ledger_path=run_ledger_path(run.job.config, run.run_root),
        write_report=write_report,
        extra={
            "engine": "deployment",
            "reproducibility": reproducibility_record(run.job.config, run.started),
        },
    )


def finalise_analysis_deployment(run: AnalysisDeploymentRun) -> dict:
    """Finish a deployment analysis's run directory through the shared analysis finaliser
    (analysis.json, analysis.html, a run-ledger record of kind analysis); returns the record.
    The coordinator holds no node's policy or budget ledger: each node's charge is what its
    answered steps cost."""
    from confide.reports.analysis import render_analysis_html

    outcome = run.outcome
    record = analysis_record(
        run.spec,
        run.run_id,
        outcome,
        engine="deployment",
        federation=run.job.federation,
        nodes=sorted({*outcome.charged, *outcome.reasons}),
    )
    finalise_analysis(
        run.run_dir,
        config=run.job.config,
        run_id=run.run_id,
        analysis=record,
        outcome=outcome.status,
        epsilon=outcome.charged,
        policy_sha256={},
        ledger_path=run_ledger_path(run.job.config, run.run_root),
        write_html=render_analysis_html if outcome.status == "completed" else None,
    )
    return record


def finalise_vertical_deployment(run: VerticalDeploymentRun) -> dict:
    """Finish a deployment vertical run through the shared vertical finaliser (metrics,
    curves, report, run-ledger record); returns the metrics. The coordinator holds no rows, no
    policy and no budget ledger: no in-process baselines, and each node's epsilon is the one
    it reported (the label node alone, from the protocol, is the baseline shown)."""
    outcome = run.outcome
    return finalise_vertical(
        run.run_dir,
        job=run.job,
        run_id=run.run_id,
        outcome=outcome.to_dict(),
        record=outcome.record,
        baselines=None,
        epsilon=outcome.epsilons,
        policy_sha256={},
        ledger_path=run_ledger_path(run.job.config, run.run_root),
        write_report=write_report,
        extra={"engine": "deployment", "seconds": run.seconds},
    )


app = ServerApp()


@app.main()
def deployment_main(grid: Grid, context: Context) -> None:
    """Run the job from the run config (an analysis when the job selects one), then finalise
    its run directory."""
    if is_analysis_run(context):
        finalise_analysis_deployment(run_analysis_deployment(grid, context))
        return
    if is_vertical_run(context):
        finalise_vertical_deployment(run_vertical_deployment(grid, context))
        return
    finalise_deployment(run_deployment(grid, context))
