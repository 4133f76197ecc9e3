{{/* Names and labels shared by every template of the ferrocanary chart. */}}

{{- define "ferrocanary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, or the release name alone when it already contains the chart name. */}}
{{- define "ferrocanary.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ferrocanary.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferrocanary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrocanary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ferrocanary.labels" -}}
helm.sh/chart: {{ include "ferrocanary.chart" . }}
{{ include "ferrocanary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferrocanary
{{- end }}

{{- define "ferrocanary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ferrocanary.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Cluster-scoped names carry the release namespace: two releases of the same name never clash. */}}
{{- define "ferrocanary.clusterName" -}}
{{- printf "%s-%s" (include "ferrocanary.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferrocanary.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Namespaces where Secrets are readable by name: the watched ones, else rbac.secretNamespaces. */}}
{{- define "ferrocanary.secretNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson .Values.rbac.secretNamespaces }}
{{- end }}
{{- end }}

{{/* Secret names the operator may get: the default token Secret and rbac.secretNames. */}}
{{- define "ferrocanary.secretNames" -}}
{{- $names := list }}
{{- with .Values.prometheus.tokenSecret.name }}{{ $names = append $names . }}{{ end }}
{{- range .Values.rbac.secretNames }}{{ $names = append $names . }}{{ end }}
{{- toJson (uniq $names) }}
{{- end }}
