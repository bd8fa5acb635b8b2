"""The controller: kopf handlers that apply the plan and report status."""
