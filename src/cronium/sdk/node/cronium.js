'use strict';
/**
 * Cronium Node.js SDK: talk to the Runtime API from a running script.
 *
 * Pre-loaded: inside a Cronium run `cronium` is a global (preload.js, via NODE_OPTIONS
 * --require), so `await cronium.input()` works without require; `require('cronium')`
 * works too (NODE_PATH). Node >= 18, built-in modules only.
 *
 * Configuration comes from the environment Cronium sets for every run:
 * CRONIUM_RUNTIME_URL (unix:///path/runtime.sock or http(s)://host:port) and
 * CRONIUM_EXECUTION_TOKEN. Connections are kept alive and reused; idle sockets never keep
 * the process alive. Transient failures (connection errors, 429, 5xx) are retried with
 * exponential backoff; 401/403 reject with CroniumAuthError at once; other 4xx reject with
 * CroniumError carrying the server's message.
 */

const http = require('http');

const VERSION = '1.0.0';
const API_PREFIX = '/runtime/v1';
const MAX_ATTEMPTS = 5;
const BACKOFF_BASE_MS = 100;
const MAX_RETRY_WAIT_MS = 30000;
const TIMEOUT_MS = 60000;
const TOOL_TIMEOUT_MS = 300000;
const IDEMPOTENT = new Set(['GET', 'PUT', 'DELETE', 'HEAD']);
const RETRY_STATUSES_SAFE = new Set([429, 500, 502, 503, 504]);
const RETRY_STATUSES_POST = new Set([429, 502, 503, 504]);
const RETRY_ERROR_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH',
  'ENETUNREACH', 'ECONNABORTED', 'ESOCKETTIMEDOUT', 'UND_ERR_SOCKET',
]);
// Errors that mean the request never reached the server: safe to repeat even a POST.
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

class CroniumError extends Error {
  constructor(message, { status = null, code = null, details = null } = {}) {
    super(message);
    this.name = 'CroniumError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

class CroniumAuthError extends CroniumError {
  constructor(message, options) {
    super(message, options);
    this.name = 'CroniumAuthError';
  }
}

// -- pure helpers ------------------------------------------------------------------------

function parseRuntimeUrl(url) {
  url = (url || '').trim();
  if (!url) {
    throw new CroniumError(
      'CRONIUM_RUNTIME_URL is not set: this script is not running under Cronium ' +
        '(the SDK only works inside a Cronium run)',
    );
  }
  if (url.startsWith('unix://')) {
    const socketPath = url.slice('unix://'.length);
    if (!socketPath.startsWith('/')) {
      throw new CroniumError(`CRONIUM_RUNTIME_URL ${url}: a unix:// URL needs an absolute socket path`);
    }
    return { scheme: 'unix', socketPath, host: 'cronium', port: null, basePath: '' };
  }
  let parsed;
  try {
    parsed = new URL(url);
  } catch (_) {
    parsed = null;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !parsed.hostname) {
    throw new CroniumError(`CRONIUM_RUNTIME_URL ${url}: expected unix:///path, http://host:port or https://host`);
  }
  return {
    scheme: parsed.protocol.slice(0, -1),
    socketPath: null,
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port ? Number(parsed.port) : null,
    basePath: parsed.pathname.replace(/\/+$/, ''),
  };
}

function backoffDelays(attempts = MAX_ATTEMPTS, baseMs = BACKOFF_BASE_MS) {
  const delays = [];
  for (let i = 0; i < attempts - 1; i += 1) delays.push(baseMs * 2 ** i);
  return delays;
}

function parseRetryAfter(value) {
  if (value === undefined || value === null || value === '') return null;
  const seconds = Number(String(value).trim());
  return Number.isFinite(seconds) ? Math.max(0, seconds) * 1000 : null;
}

function retryWait(backoffMs, retryAfterMs) {
  const wait = retryAfterMs === null ? backoffMs : Math.max(backoffMs, retryAfterMs);
  return Math.min(wait, MAX_RETRY_WAIT_MS);
}

function isRetryableStatus(method, status) {
  return (IDEMPOTENT.has(method) ? RETRY_STATUSES_SAFE : RETRY_STATUSES_POST).has(status);
}

function errorFromResponse(method, path, status, raw) {
  let code = null;
  let details = null;
  let message = '';
  let body = null;
  try {
    body = raw ? JSON.parse(raw) : null;
  } catch (_) {
    body = null;
  }
  if (body && typeof body === 'object' && body.error && typeof body.error === 'object') {
    code = typeof body.error.code === 'string' ? body.error.code : null;
    message = String(body.error.message || '');
    details = body.error.details === undefined ? null : body.error.details;
  } else if (body && typeof body === 'object' && 'detail' in body) {
    message = String(body.detail);
  } else if (raw) {
    message = String(raw).trim().slice(0, 500);
  }
  const label = code ? `${status} ${code}` : String(status);
  const text = `Cronium Runtime API ${method} ${path} failed: ${label}: ${message || 'no message'}`;
  const Cls = status === 401 || status === 403 ? CroniumAuthError : CroniumError;
  return new Cls(text, { status, code, details });
}

function encodeKey(key) {
  if (typeof key !== 'string' || key === '') {
    throw new CroniumError(`variable name must be a non-empty string, not ${JSON.stringify(key)}`);
  }
  return encodeURIComponent(key);
}

// -- transport ---------------------------------------------------------------------------

let agents = null;
let endpointCache = null;

function settings() {
  if (endpointCache === null) endpointCache = parseRuntimeUrl(process.env.CRONIUM_RUNTIME_URL);
  const token = process.env.CRONIUM_EXECUTION_TOKEN || '';
  if (!token) {
    throw new CroniumAuthError('CRONIUM_EXECUTION_TOKEN is not set: this script is not running under Cronium');
  }
  return { endpoint: endpointCache, token };
}

function agentFor(endpoint) {
  // Created on first use: loading the SDK opens nothing. Node unrefs idle keep-alive
  // sockets, so they never keep the process alive.
  if (agents === null) agents = {};
  if (!agents[endpoint.scheme]) {
    const mod = endpoint.scheme === 'https' ? require('https') : http;
    agents[endpoint.scheme] = new mod.Agent({ keepAlive: true, keepAliveMsecs: 1000, maxSockets: 16 });
  }
  return agents[endpoint.scheme];
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function exchange(endpoint, method, path, payload, headers, timeoutMs) {
  const mod = endpoint.scheme === 'https' ? require('https') : http;
  const options = { method, path, headers, agent: agentFor(endpoint) };
  if (endpoint.scheme === 'unix') {
    options.socketPath = endpoint.socketPath;
  } else {
    options.host = endpoint.host;
    if (endpoint.port) options.port = endpoint.port;
  }
  return new Promise((resolve, reject) => {
    let sent = false;
    const req = mod.request(options, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        resolve({
          status: res.statusCode,
          raw: Buffer.concat(chunks).toString('utf8'),
          retryAfterMs: parseRetryAfter(res.headers['retry-after']),
        });
      });
      res.on('error', (err) => {
        err.croniumSent = true;
        reject(err);
      });
    });
    req.setTimeout(timeoutMs, () => {
      const err = new Error(`no answer within ${timeoutMs / 1000} s`);
      err.code = 'ETIMEDOUT';
      req.destroy(err);
    });
    req.on('finish', () => {
      sent = true;
    });
    req.on('error', (err) => {
      // A reused keep-alive socket the server had closed: the request was not read.
      err.croniumSent = sent && !(req.reusedSocket && err.code === 'ECONNRESET');
      reject(err);
    });
    req.end(payload === null ? undefined : payload);
  });
}

async function request(method, path, body, { timeoutMs = TIMEOUT_MS } = {}) {
  const { endpoint, token } = settings();
  const payload = body === undefined ? null : Buffer.from(JSON.stringify(body), 'utf8');
  const headers = {
    Authorization: `Bearer ${token}`,
    Accept: 'application/json',
    'User-Agent': `cronium-node/${VERSION}`,
  };
  if (payload !== null) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(payload.length);
  }
  const fullPath = endpoint.basePath + API_PREFIX + path;
  const delays = backoffDelays();
  for (let attempt = 0; ; attempt += 1) {
    const last = attempt >= delays.length;
    let answer;
    try {
      answer = await exchange(endpoint, method, fullPath, payload, headers, timeoutMs);
    } catch (err) {
      const transient = RETRY_ERROR_CODES.has(err.code) || NOT_SENT_CODES.has(err.code);
      const repeatable = IDEMPOTENT.has(method) || !err.croniumSent || NOT_SENT_CODES.has(err.code);
      if (last || !transient || !repeatable) {
        const where = endpoint.socketPath || `${endpoint.host}:${endpoint.port || ''}`;
        const tries = attempt ? ` (after ${attempt + 1} attempts)` : '';
        const failure = new CroniumError(
          `Cronium Runtime API ${method} ${fullPath}: cannot reach ${where}: ${err.code || err.message}${tries}`,
        );
        failure.cause = err;
        throw failure;
      }
      await sleep(retryWait(delays[attempt], null));
      continue;
    }
    const { status, raw, retryAfterMs } = answer;
    if ((status >= 200 && status < 300) || status === 404) {
      let data = null;
      if (raw) {
        try {
          data = JSON.parse(raw);
        } catch (_) {
          data = raw;
        }
      }
      return { status, data };
    }
    const failure = errorFromResponse(method, fullPath, status, raw);
    if (last || failure instanceof CroniumAuthError || !isRetryableStatus(method, status)) throw failure;
    await sleep(retryWait(delays[attempt], retryAfterMs));
  }
}

async function call(method, path, body, options) {
  const { status, data } = await request(method, path, body, options);
  if (status === 404) {
    throw errorFromResponse(method, API_PREFIX + path, 404, data === null ? '' : JSON.stringify(data));
  }
  return data;
}

function isRouteMissing(err) {
  return err.status === 405 || (err.status === 404 && /: Not Found\s*$/.test(err.message));
}

// -- the API -----------------------------------------------------------------------------

/** The execution's input: the JSON the run was started with ({} when it was given none). */
async function input() {
  return (await call('GET', '/input')).value;
}

/** Set this job's output (any JSON-serialisable value). */
async function output(data) {
  await call('PUT', '/output', { value: data === undefined ? null : data });
}

/** A variable's value, or `defaultValue` (null) when it does not exist. */
async function getVariable(key, defaultValue = null) {
  const { status, data } = await request('GET', `/variables/${encodeKey(key)}`);
  if (status === 404) return defaultValue;
  return data && typeof data === 'object' && 'value' in data ? data.value : data;
}

/** Create or replace a variable (a secret variable stays secret). */
async function setVariable(key, value) {
  await call('PUT', `/variables/${encodeKey(key)}`, { value: value === undefined ? null : value });
}

/** Delete a variable: true if it existed, false if not. */
async function deleteVariable(key) {
  const { status } = await request('DELETE', `/variables/${encodeKey(key)}`);
  return status !== 404;
}

/** Whether the variable exists (even with a null value). */
async function variableExists(key) {
  const { status } = await request('GET', `/variables/${encodeKey(key)}`);
  return status !== 404;
}

/** Atomically add `by` (default 1) to a numeric variable (missing counts as 0): the new value. */
async function incrementVariable(key, by = 1) {
  if (typeof by !== 'number' || !Number.isFinite(by)) {
    throw new TypeError(`incrementVariable: 'by' must be a finite number, not ${JSON.stringify(by)}`);
  }
  return (await call('POST', `/variables/${encodeKey(key)}/increment`, { by })).value;
}

/** Atomically append `value` to a list variable (missing starts empty): the new length. */
async function appendVariable(key, value) {
  const data = await call('POST', `/variables/${encodeKey(key)}/append`, { value: value === undefined ? null : value });
  return data.length;
}

/** Set the condition that drives this event's on_condition actions. */
async function setCondition(value) {
  if (typeof value !== 'boolean') {
    throw new TypeError(`setCondition expects true or false, not ${JSON.stringify(value)}`);
  }
  await call('PUT', '/condition', { value });
}

/** The condition set by this job so far (null until set). */
async function getCondition() {
  const value = (await call('GET', '/condition')).value;
  return value === undefined ? null : value;
}

/** The run's context: { event, execution, job, user }. */
async function event() {
  return call('GET', '/context');
}

/** Ids and mode of this run, from the environment (no API call, synchronous). */
function info() {
  const env = process.env;
  return {
    executionId: env.CRONIUM_EXECUTION_ID || null,
    jobId: env.CRONIUM_JOB_ID || null,
    eventId: env.CRONIUM_EVENT_ID || null,
    mode: env.CRONIUM_EXECUTION_MODE || null,
  };
}

/**
 * Run a tool action (e.g. tool 'slack', action 'send_message') with the owner's
 * credentials; resolves to the server's JSON answer. Not repeated once the request may
 * have reached the server.
 */
async function executeToolAction(tool, action, params = {}) {
  if (typeof tool !== 'string' || !tool || typeof action !== 'string' || !action) {
    throw new CroniumError('executeToolAction needs a tool and an action name');
  }
  if (params === null || params === undefined) params = {};
  if (typeof params !== 'object' || Array.isArray(params)) {
    throw new TypeError('executeToolAction: params must be an object');
  }
  try {
    return await call('POST', '/tool-actions', { tool, action, params }, { timeoutMs: TOOL_TIMEOUT_MS });
  } catch (err) {
    if (err instanceof CroniumError && !(err instanceof CroniumAuthError) && isRouteMissing(err)) {
      throw new CroniumError(`tool actions are not available on this Cronium server (${err.message})`, {
        status: err.status,
        code: err.code,
        details: err.details,
      });
    }
    throw err;
  }
}

function compact(fields) {
  const out = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) out[k] = v;
  return out;
}

function splitOptions(options, known) {
  const extra = {};
  const picked = {};
  for (const [k, v] of Object.entries(options || {})) {
    if (known[k]) picked[known[k]] = v;
    else extra[k] = v;
  }
  return { picked, extra };
}

/**
 * Send an e-mail: tool 'email', action 'send'. Call as sendEmail(to, subject, body, options)
 * or sendEmail({ to, subject, body, html, credentialId, cc, bcc, replyTo }).
 */
async function sendEmail(to, subject, body, options = {}) {
  if (to && typeof to === 'object' && !Array.isArray(to)) {
    ({ to, subject, body, ...options } = to);
  }
  const { picked, extra } = splitOptions(options, {
    html: 'html', credentialId: 'credential_id', credential_id: 'credential_id', cc: 'cc', bcc: 'bcc',
    replyTo: 'reply_to', reply_to: 'reply_to',
  });
  return executeToolAction('email', 'send', compact({ to, subject, body, ...picked, ...extra }));
}

/**
 * Post a Slack message: tool 'slack', action 'send_message'. Call as
 * sendSlackMessage(text, { channel, credentialId, blocks, username }) or with one object.
 */
async function sendSlackMessage(text, options = {}) {
  if (text && typeof text === 'object') ({ text, ...options } = text);
  const { picked, extra } = splitOptions(options, {
    channel: 'channel', credentialId: 'credential_id', credential_id: 'credential_id', blocks: 'blocks',
    username: 'username',
  });
  return executeToolAction('slack', 'send_message', compact({ text, ...picked, ...extra }));
}

/**
 * Post a Discord message: tool 'discord', action 'send_message'. Call as
 * sendDiscordMessage(content, { credentialId, username, embeds }) or with one object.
 */
async function sendDiscordMessage(content, options = {}) {
  if (content && typeof content === 'object') ({ content, ...options } = content);
  const { picked, extra } = splitOptions(options, {
    credentialId: 'credential_id', credential_id: 'credential_id', username: 'username', embeds: 'embeds',
  });
  return executeToolAction('discord', 'send_message', compact({ content, ...picked, ...extra }));
}

module.exports = {
  VERSION,
  CroniumError,
  CroniumAuthError,
  input,
  getInput: input,
  output,
  setOutput: output,
  getVariable,
  setVariable,
  deleteVariable,
  variableExists,
  incrementVariable,
  appendVariable,
  setCondition,
  getCondition,
  event,
  getEvent: event,
  context: event,
  info,
  executeToolAction,
  sendEmail,
  sendSlackMessage,
  sendDiscordMessage,
  // Internals, exported for tests.
  _internal: { parseRuntimeUrl, backoffDelays, parseRetryAfter, retryWait, isRetryableStatus, errorFromResponse },
};
