"""A Parsl provider whose jobs do what the test says: the strategy's and the blocks' scheduler."""

from parsl.jobs.states import JobState, JobStatus
from parsl.providers.base import ExecutionProvider
from parsl.providers.errors import SubmitException


class ScriptedProvider(ExecutionProvider):
    def __init__(self, init_blocks=0, min_blocks=0, max_blocks=3, nodes_per_block=1, parallelism=1.0):
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.nodes_per_block = nodes_per_block
        self.parallelism = parallelism
        self.script_dir = None
        self.resources = {}
        self.jobs: dict[str, JobStatus] = {}
        self.commands: list[str] = []
        self.cancelled: list[str] = []
        self.refuse_submit: str | None = None  # the scheduler's complaint, while set
        self.status_calls = 0
        self.polling_interval = 1

    @property
    def label(self):
        return "scripted"

    @property
    def status_polling_interval(self):
        return self.polling_interval

    def submit(self, command, tasks_per_node, job_name="parsl.scripted"):
        if self.refuse_submit:
            raise SubmitException(job_name, self.refuse_submit)
        job_id = str(100 + len(self.commands))
        self.commands.append(command)
        self.jobs[job_id] = JobStatus(JobState.PENDING)
        return job_id

    def status(self, job_ids):
        self.status_calls += 1
        return [self.jobs[job_id] for job_id in job_ids]

    def cancel(self, job_ids):
        for job_id in job_ids:
            self.jobs[job_id] = JobStatus(JobState.CANCELLED)
        self.cancelled.extend(job_ids)
        return [True] * len(job_ids)

    def set(self, job_id: str, state: JobState, **details) -> None:
        self.jobs[job_id] = JobStatus(state, **details)

    def live(self) -> list[str]:
        return [job_id for job_id, status in self.jobs.items() if not status.terminal]
