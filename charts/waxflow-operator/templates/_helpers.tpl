{{- define "waxflow-operator.labels" -}}
app.kubernetes.io/name: waxflow-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "waxflow-operator.selectorLabels" -}}
app.kubernetes.io/name: waxflow-operator
app.kubernetes.io/component: controller
{{- end }}

{{- define "waxflow-operator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- define "waxflow-operator.subject" -}}
- kind: ServiceAccount
  name: waxflow-controller
  namespace: {{ .Release.Namespace }}
{{- end }}
