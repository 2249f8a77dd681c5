{{/* Names, labels and the image shared by every object of the chart. */}}

{{- define "flowscope.labels" -}}
app.kubernetes.io/part-of: flowscope
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "flowscope.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* A TOML string. */}}
{{- define "flowscope.toml" -}}
{{ . | toString | toJson }}
{{- end -}}

{{/* A TOML array of strings. */}}
{{- define "flowscope.tomlList" -}}
[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ $v | toString | toJson }}{{ end }}]
{{- end -}}
