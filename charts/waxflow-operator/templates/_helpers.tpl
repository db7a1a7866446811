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
{{- else if .Values.image.tag -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- else -}}
{{- fail "image.digest is required (sha256:<64 hex>, see npm run images -- --json); set image.tag instead to pull by tag" -}}
{{- end -}}
{{- end }}

{{- define "waxflow-operator.labelList" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}{{- end -}}
{{- join "," $pairs -}}
{{- end }}

{{- define "waxflow-operator.subject" -}}
- kind: ServiceAccount
  name: waxflow-controller
  namespace: {{ .Release.Namespace }}
{{- end }}
