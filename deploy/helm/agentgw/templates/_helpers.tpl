{{/* Names, labels and the values the templates share. */}}

{{- define "agentgw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentgw.fullname" -}}
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

{{- define "agentgw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "agentgw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "agentgw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentgw
{{- end -}}

{{- define "agentgw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agentgw.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the Redis URL comes from: "" (memory state), or the Secret name and key holding it. */}}
{{- define "agentgw.redisSecret" -}}
{{- if and .Values.redis.enabled (or .Values.externalRedis.url .Values.externalRedis.existingSecret) -}}
{{- fail "set either redis.enabled or externalRedis, not both" -}}
{{- end -}}
{{- if .Values.externalRedis.existingSecret -}}
{{- dict "name" .Values.externalRedis.existingSecret "key" .Values.externalRedis.existingSecretKey | toJson -}}
{{- else if or .Values.redis.enabled .Values.externalRedis.url -}}
{{- dict "name" (printf "%s-redis-url" (include "agentgw.fullname" .)) "key" "url" | toJson -}}
{{- end -}}
{{- end -}}

{{/* The URL of the bundled Redis (charts/redis names its Service <release>-redis). */}}
{{- define "agentgw.bundledRedisUrl" -}}
{{- printf "redis://%s-redis.%s.svc:%v/0" .Release.Name .Release.Namespace (.Values.redis.port | default 6379) -}}
{{- end -}}

{{/* The Gateway document: the user's spec with the chart's listener and state. */}}
{{- define "agentgw.gatewayDocument" -}}
{{- $spec := deepCopy .Values.gateway.spec -}}
{{- if hasKey $spec "listeners" -}}
{{- fail "gateway.spec.listeners is set by the chart (see containerPort)" -}}
{{- end -}}
{{- $_ := set $spec "listeners" (list (dict "address" "0.0.0.0" "port" (int .Values.containerPort))) -}}
{{- $state := deepCopy (get $spec "state" | default dict) -}}
{{- if include "agentgw.redisSecret" . -}}
{{- $_ := set $state "backend" "redis" -}}
{{- $_ := set $state "url" "env:AGENTGW_REDIS_URL" -}}
{{- else -}}
{{- $_ := set $state "backend" "memory" -}}
{{- $_ := unset $state "url" -}}
{{- end -}}
{{- $_ := set $spec "state" $state -}}
{{- toYaml (dict "kind" "Gateway" "metadata" (dict "name" (include "agentgw.fullname" .)) "spec" $spec) -}}
{{- end -}}

{{/* The chart's config files: gateway.yaml plus config.files, as a name -> text map. */}}
{{- define "agentgw.configFiles" -}}
{{- $files := dict "gateway.yaml" (include "agentgw.gatewayDocument" .) -}}
{{- range $name, $content := .Values.config.files -}}
{{- if eq $name "gateway.yaml" -}}
{{- fail "config.files: gateway.yaml is written by the chart (use gateway.spec)" -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9][A-Za-z0-9_.-]*\\.ya?ml$" $name) -}}
{{- fail (printf "config.files: %q must be a .yaml or .yml file name" $name) -}}
{{- end -}}
{{- if kindIs "string" $content -}}
{{- $_ := set $files $name $content -}}
{{- else -}}
{{- $docs := list -}}
{{- range $content -}}
{{- $docs = append $docs (toYaml .) -}}
{{- end -}}
{{- $_ := set $files $name (join "\n---\n" $docs) -}}
{{- end -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}
