"""examples/sam: the template after the SAM transform, and `sam build` of the example.

The transform is aws-sam-translator's, the code CloudFormation runs for
`Transform: AWS::Serverless-2016-10-31`. It runs in a subprocess, with this
Python when it has the package, else with .venv-sam's (the SAM CLI's venv, which
has it: `make sam-cli`). The build test runs scripts/sam-build.sh (what
`make sam-build` runs) into a temporary directory and looks inside the artifact.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "sam" / "template.yaml"
SAM_VENV = ROOT / ".venv-sam"
STACK, REGION, ACCOUNT = "shop", "us-east-1", "123456789012"
PSEUDO = {"AWS::StackName": STACK, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
EM_AARCH64 = 183
"""ELF e_machine of 64-bit ARM (Lambda's arm64)."""

# argv: template, pseudo parameters (JSON), output file. Local CodeUris become S3
# URIs first, as `sam package` would make them (the transform accepts no other).
_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

def s3(uri):
    return uri if not isinstance(uri, str) or uri.startswith("s3://") else "s3://bucket/" + uri.strip("/")

with open(sys.argv[1]) as f:
    template = yaml_parse(f.read())
function_globals = template.get("Globals", {}).get("Function", {})
if "CodeUri" in function_globals:
    function_globals["CodeUri"] = s3(function_globals["CodeUri"])
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in resource["Properties"]:
        resource["Properties"]["CodeUri"] = s3(resource["Properties"]["CodeUri"])
result = transform(template, json.loads(sys.argv[2]), NoManagedPolicies())
with open(sys.argv[3], "w") as f:
    json.dump(result, f)
"""

Template = dict[str, Any]


def _translator_python() -> str | None:
    """A Python with aws-sam-translator: this one, else .venv-sam's, else None."""
    if importlib.util.find_spec("samtranslator") is not None:
        return sys.executable
    python = SAM_VENV / "bin" / "python"
    return str(python) if python.exists() else None


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """The template as CloudFormation deploys it, after the SAM transform."""
    python = _translator_python()
    if python is None:
        pytest.skip("aws-sam-translator is not installed here nor in .venv-sam (make sam-cli installs it)")
    out = tmp_path_factory.mktemp("sam") / "transformed.json"
    result = subprocess.run(
        [python, "-c", _TRANSFORM, str(TEMPLATE), json.dumps(PSEUDO), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_DEFAULT_REGION": REGION},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"SAM transform failed:\n{result.stderr}"
    return cast("Template", json.loads(out.read_text()))


def resource(template: Template, name: str, type_: str) -> dict[str, Any]:
    """The properties of resource `name`, which must be of type `type_`."""
    found = template["Resources"][name]
    assert found["Type"] == type_
    return cast("dict[str, Any]", found.get("Properties", {}))


def of_type(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def sub(value: object) -> str:
    """Resolve an `Fn::Sub` of pseudo parameters only (what the names and ARNs here use)."""
    assert isinstance(value, dict), value
    text = value["Fn::Sub"]
    assert isinstance(text, str), text

    def pseudo(match: re.Match[str]) -> str:
        return PSEUDO[match.group(1)]

    return re.sub(r"\$\{(AWS::\w+)\}", pseudo, text)


def references(node: object) -> Iterator[str]:
    """The logical ids a value refers to (Ref, Fn::GetAtt, Fn::Sub); pseudo parameters too."""
    if isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                yield from (name.split(".", 1)[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text))
                if isinstance(value, list):
                    yield from references(value[1])
            else:
                yield from references(value)


def statements(node: object) -> Iterator[dict[str, Any]]:
    """Every policy statement anywhere in the template (roles, policies, resource policies)."""
    if isinstance(node, list):
        for item in node:
            yield from statements(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Statement":
                yield from (value if isinstance(value, list) else [value])
            else:
                yield from statements(value)


def listed(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


# --- alarms ---------------------------------------------------------------------


def test_the_dead_letters_alarm_fires_on_one_visible_dead_letter(transformed: Template) -> None:
    alarm = resource(transformed, "DeadLettersAlarm", "AWS::CloudWatch::Alarm")

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "Maximum",
        "GreaterThanThreshold",
        0,
    )
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_oldest_job_alarm_watches_the_job_queue_against_a_parameter(transformed: Template) -> None:
    alarm = resource(transformed, "OldestJobAlarm", "AWS::CloudWatch::Alarm")

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["JobQueue", "QueueName"]}}]
    assert (alarm["Statistic"], alarm["ComparisonOperator"]) == ("Maximum", "GreaterThanThreshold")
    assert alarm["Threshold"] == {"Ref": "OldestJobAgeAlarmSeconds"}
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    parameter = transformed["Parameters"]["OldestJobAgeAlarmSeconds"]
    retention = resource(transformed, "JobQueue", "AWS::SQS::Queue")["MessageRetentionPeriod"]
    # Above the longest healthy age (a 900 s DelaySeconds plus a run), below the retention.
    assert 900 + 6 * 30 < parameter["Default"] < retention
    assert parameter["MaxValue"] <= retention


def test_the_email_subscription_exists_only_with_an_address(transformed: Template) -> None:
    subscription = transformed["Resources"]["AlarmEmailSubscription"]

    assert subscription["Condition"] == "HasAlarmEmail"
    assert transformed["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert transformed["Parameters"]["AlarmEmail"]["Default"] == ""
    assert list(of_type(transformed, "AWS::SNS::Topic")) == ["AlarmTopic"]


# --- queues -----------------------------------------------------------------------


def test_the_dlq_admits_exactly_the_job_queue_as_its_source(transformed: Template) -> None:
    dlq = resource(transformed, "DeadLetterQueue", "AWS::SQS::Queue")
    queue = resource(transformed, "JobQueue", "AWS::SQS::Queue")

    allow = dlq["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    (source,) = allow["sourceQueueArns"]
    # The ARN is built from the job queue's name: both must resolve to the same queue.
    assert sub(source) == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{sub(queue['QueueName'])}"
    assert sub(queue["QueueName"]) == f"{STACK}-jobs"


def test_the_job_queue_redrives_to_the_dlq_as_a_backstop(transformed: Template) -> None:
    queue = resource(transformed, "JobQueue", "AWS::SQS::Queue")

    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert transformed["Parameters"]["MaxReceiveCount"]["Default"] > 25  # glasswork's default attempts


def test_no_resource_depends_on_itself(transformed: Template) -> None:
    """A circular reference (say the DLQ's RedriveAllowPolicy by !GetAtt JobQueue.Arn) fails the deploy."""
    resources: dict[str, dict[str, Any]] = transformed["Resources"]
    edges = {
        name: {ref for ref in references(body) if ref in resources}
        | {str(target) for target in listed(body.get("DependsOn", []))}
        for name, body in resources.items()
    }
    assert "DeadLetterQueue" in edges["JobQueue"]  # the RedrivePolicy: the one the DLQ must not return
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"circular reference: {' -> '.join((*path, name))}"
        if name in done:
            return
        for target in edges[name]:
            visit(target, (*path, name))
        done.add(name)

    for name in edges:
        visit(name, ())


# --- worker -------------------------------------------------------------------------


def test_the_event_source_mapping_reports_batch_item_failures(transformed: Template) -> None:
    (mapping,) = of_type(transformed, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]

    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["JobQueue", "Arn"]}
    assert properties["FunctionName"] == {"Ref": "WorkerFunction"}
    assert properties["BatchSize"] <= 10


def test_the_visibility_timeout_is_six_times_the_worker_timeout(transformed: Template) -> None:
    worker = resource(transformed, "WorkerFunction", "AWS::Lambda::Function")
    queue = resource(transformed, "JobQueue", "AWS::SQS::Queue")

    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]


def test_both_functions_are_python_312_on_arm64(transformed: Template) -> None:
    """What scripts/sam-build.sh builds for (the build test checks the artifact's msgspec)."""
    functions = of_type(transformed, "AWS::Lambda::Function")

    assert sorted(functions) == ["ApiFunction", "WorkerFunction"]
    for function in functions.values():
        assert function["Properties"]["Runtime"] == "python3.12"
        assert function["Properties"]["Architectures"] == ["arm64"]


# --- IAM --------------------------------------------------------------------------------


def test_no_policy_statement_grants_a_wildcard(transformed: Template) -> None:
    found = list(statements(transformed["Resources"]))

    assert len(found) >= 10
    for statement in found:
        assert "NotAction" not in statement, statement
        assert "NotResource" not in statement, statement
        for action in listed(statement.get("Action", [])):
            assert isinstance(action, str), statement
            assert action != "*", statement
            assert not action.endswith(":*"), statement
        for resource_ in listed(statement.get("Resource", [])):
            assert resource_ != "*", statement
        principal = statement.get("Principal")
        assert principal != "*", statement
        assert not isinstance(principal, dict) or principal.get("AWS") != "*", statement


def test_each_role_has_exactly_the_documented_actions(transformed: Template) -> None:
    """The README's IAM tables; the alarms add nothing to any role. SAM generated no role of its own."""
    roles = of_type(transformed, "AWS::IAM::Role")
    actions = {
        name: sorted(
            str(action)
            for policy in role["Properties"].get("Policies", [])
            for statement in policy["PolicyDocument"]["Statement"]
            for action in listed(statement["Action"])
        )
        for name, role in roles.items()
    }

    assert actions == {
        "WorkerRole": sorted(
            [
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
                "sqs:SendMessage",
            ]
        ),
        "SchedulerRole": ["sqs:SendMessage"],
        "ApiRole": sorted(
            [
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "sqs:SendMessage",
                "sqs:GetQueueAttributes",
                "scheduler:CreateSchedule",
                "scheduler:DeleteSchedule",
                "iam:PassRole",
            ]
        ),
    }
    for role in roles.values():
        assert "ManagedPolicyArns" not in role["Properties"]
    assert not of_type(transformed, "AWS::IAM::Policy")
    assert not of_type(transformed, "AWS::IAM::ManagedPolicy")


# --- sam build ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sam_build_packages_this_checkout_for_arm64(tmp_path: Path) -> None:
    """scripts/sam-build.sh (make sam-build), into a temporary directory: about 20 s."""
    sam = SAM_VENV / "bin" / "sam"
    if not sam.exists():
        pytest.skip("no SAM CLI in .venv-sam (make sam-cli installs it; make test does)")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "sam-build.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_WORK_DIR": str(tmp_path), "SAM": str(sam)},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"sam build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    build = tmp_path / "build"
    built_template = (build / "template.yaml").read_text()
    sources = sorted((ROOT / "src" / "glasswork").rglob("*.py"))
    assert sources
    for function in ("WorkerFunction", "ApiFunction"):
        assert f"CodeUri: {function}\n" in built_template
        artifact = build / function
        # glasswork is this checkout's, file for file.
        assert (artifact / f"glasswork-{version}.dist-info").is_dir()
        for source in sources:
            relative = source.relative_to(ROOT / "src")
            assert (artifact / relative).read_bytes() == source.read_bytes(), relative
        # Its dependencies, for Lambda's Python 3.12 on arm64 (not this machine's).
        assert (artifact / "boto3").is_dir()  # the [sqs] extra
        (core,) = (artifact / "msgspec").glob("_core*.so")
        assert "cpython-312" in core.name
        assert "aarch64" in core.name
        header = core.read_bytes()[:20]
        assert header[:5] == b"\x7fELF\x02"  # 64-bit ELF
        assert int.from_bytes(header[18:20], "little") == EM_AARCH64
        # The app itself.
        for module in ("__init__", "jobs", "settings", "worker", "api"):
            assert (artifact / "sam_shop" / f"{module}.py").is_file()
