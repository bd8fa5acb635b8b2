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
