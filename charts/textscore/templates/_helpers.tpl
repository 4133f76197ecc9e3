{{/* Labels of the textscore chart, as workloads/k8s/: `app` and `track` select, and `track` becomes
the series label ferrocanary's default selectors read (track="baseline" / track="candidate"). */}}

{{- define "textscore.labels" -}}
app: {{ .Values.app }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: textscore
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
