{{/* Chart name, overridable. */}}
{{- define "tenfold.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object-name prefix: the release name, plus the chart name unless already in it. */}}
{{- define "tenfold.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object of the chart carries. */}}
{{- define "tenfold.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tenfold.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tenfold
{{- end -}}

{{/* Labels that select the operator pod; never change them after a release exists. */}}
{{- define "tenfold.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenfold.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The operator's ServiceAccount name. */}}
{{- define "tenfold.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tenfold.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the GPU price ConfigMap (TENFOLD_PRICES_CONFIGMAP). */}}
{{- define "tenfold.pricesName" -}}
{{- printf "%s-gpu-prices" (include "tenfold.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of the ClusterKopfPeering object used when replicaCount > 1. */}}
{{- define "tenfold.peeringName" -}}
{{- default (include "tenfold.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* An image reference; the tag defaults to the chart's appVersion. */}}
{{- define "tenfold.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}

{{/*
What the operator does inside a namespace whose InferenceServices it serves, verb by verb
from the code that calls it (docs/security.md): the ClusterRole grants these everywhere,
a namespaced install (watchNamespaces) grants them per listed namespace with a Role.
*/}}
{{- define "tenfold.serviceRules" -}}
{{- $children := list "list" "create" "patch" "delete" -}}
{{- $watched := append $children "watch" -}}
# kopf lists and watches InferenceServices and merge-patches its progress annotations and
# finalizer into their metadata; it never reads one by name.
- apiGroups: [serving.tenfold.dev]
  resources: [inferenceservices]
  verbs: [list, watch, patch]
# Conditions and cost through the status subresource (kopf's merge patch); the autoscaler
# merge-patches replicas through scale (autoscale/actuator.py).
- apiGroups: [serving.tenfold.dev]
  resources: [inferenceservices/status, inferenceservices/scale]
  verbs: [patch]
# Children carry blockOwnerDeletion owner references, which clusters running the
# OwnerReferencesPermissionEnforcement admission plugin allow only with this.
- apiGroups: [serving.tenfold.dev]
  resources: [inferenceservices/finalizers]
  verbs: [update]
# The children of every InferenceService (controller/apply.py): a server-side apply that
# creates needs create and patch, pruning lists by label and deletes. The kinds a service
# cannot serve without are watched, so a child deleted or edited by hand is applied again
# (controller/drift.py), and the status reads the Deployment from that watch
# (controller/observe.py). Nothing reads one by name or updates one.
- apiGroups: [apps]
  resources: [deployments]
  verbs: {{ toJson $watched }}
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: {{ toJson $watched }}
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: {{ toJson $watched }}
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: {{ toJson $children }}
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: {{ toJson $children }}
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: {{ toJson $children }}
# The managed Redis's password: created once, with a generated value, and never read,
# changed or listed (the garbage collector deletes it with its InferenceService).
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
# Pod readiness and the prepare step's accuracy report feed the status, from a watch of the
# serving pods (by label), not a request per service per tick.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# InferenceTunings (controller/tuning_actions.py): kopf lists, watches and patches them
# like services; when a search's Job ends, its tuning is read once by name and its results
# written through status.
- apiGroups: [serving.tenfold.dev]
  resources: [inferencetunings]
  verbs: [get, list, watch, patch]
- apiGroups: [serving.tenfold.dev]
  resources: [inferencetunings/status]
  verbs: [patch]
- apiGroups: [serving.tenfold.dev]
  resources: [inferencetunings/finalizers]
  verbs: [update]
# Each tuning generation's search is a Job (plan/tuning.py), applied like a child, watched to
# learn when it ends, and deleted when a newer generation replaces it; its pod reports
# through its termination message, read from the pods list above.
# A tuning's timer reads its own Job by name, to catch an end the watch missed.
- apiGroups: [batch]
  resources: [jobs]
  verbs: {{ toJson (append $watched "get") }}
# kopf posts handler progress and errors as core/v1 events (create only).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
