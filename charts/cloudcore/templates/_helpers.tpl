{{/* The release's object name: RELEASE-cloudcore, or RELEASE when it already says cloudcore. */}}
{{- define "cloudcore.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cloudcore.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cloudcore.labels" -}}
{{ include "cloudcore.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cloudcore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cloudcore.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cloudcore.pkiSecret" -}}
{{- if .Values.pki.create -}}
{{- printf "%s-pki" (include "cloudcore.fullname" .) -}}
{{- else -}}
{{- required "pki.existingSecret is required (a Secret with ca.crt, ca.key, cloudcore.crt, cloudcore.key, token-signing.key; see README.md), or set pki.create" .Values.pki.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "cloudcore.tokensSecret" -}}
{{- if .Values.tokens.create -}}
{{- printf "%s-tokens" (include "cloudcore.fullname" .) -}}
{{- else -}}
{{- required "tokens.existingSecret is required (a Secret with tokens.csv; see README.md), or set tokens.create" .Values.tokens.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* Fails on values that cannot work, with a message that says what to change. */}}
{{- define "cloudcore.validate" -}}
{{- $backend := .Values.store.backend -}}
{{- if not (has $backend (list "rocksdb" "etcd")) -}}
{{- fail (printf "store.backend must be rocksdb or etcd, not %q" $backend) -}}
{{- end -}}
{{- if and (eq $backend "rocksdb") (gt (int .Values.replicas) 1) -}}
{{- fail (printf "replicas: %d needs store.backend etcd (the embedded RocksDB store serves one replica)" (int .Values.replicas)) -}}
{{- end -}}
{{- if lt (int .Values.replicas) 1 -}}
{{- fail "replicas must be at least 1" -}}
{{- end -}}
{{- if and (eq $backend "etcd") (empty .Values.store.etcd.endpoints) -}}
{{- fail "store.etcd.endpoints is required with store.backend etcd" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" -}}
{{- end -}}
{{- end -}}

{{/* One Service port block: .svc is the service's values, .name the port name. */}}
{{- define "cloudcore.service" -}}
{{- $svc := .svc -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ printf "%s-%s" (include "cloudcore.fullname" .root) .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "cloudcore.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $svc.type }}
  {{- if and $svc.loadBalancerIP (eq $svc.type "LoadBalancer") }}
  loadBalancerIP: {{ $svc.loadBalancerIP }}
  {{- end }}
  {{- if and $svc.externalTrafficPolicy (has $svc.type (list "LoadBalancer" "NodePort")) }}
  externalTrafficPolicy: {{ $svc.externalTrafficPolicy }}
  {{- end }}
  selector:
    {{- include "cloudcore.selectorLabels" .root | nindent 4 }}
  ports:
    - name: {{ .name }}
      port: {{ $svc.port }}
      targetPort: {{ .name }}
      protocol: TCP
      {{- if and $svc.nodePort (has $svc.type (list "LoadBalancer" "NodePort")) }}
      nodePort: {{ $svc.nodePort }}
      {{- end }}
{{- end -}}
