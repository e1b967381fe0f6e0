// Type declarations of the Cronium Node.js SDK (cronium.js).
// Inside a Cronium run the module is also the global `cronium` (see preload.js).

declare namespace cronium {
  type JsonPrimitive = string | number | boolean | null;
  type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };

  interface ErrorOptions {
    status?: number | null;
    code?: string | null;
    details?: unknown;
  }

  /** A Runtime API call failed. `status` is the HTTP status (null: no answer at all). */
  class CroniumError extends Error {
    constructor(message: string, options?: ErrorOptions);
    readonly status: number | null;
    readonly code: string | null;
    readonly details: unknown;
  }

  /** 401/403: the execution token is missing, invalid, or its job has ended. */
  class CroniumAuthError extends CroniumError {}

  /** What `event()` resolves to (GET /runtime/v1/context). */
  interface Context {
    event: {
      id: number;
      name: string;
      type: string;
      language: string | null;
      tags: string[];
    };
    execution: {
      id: number;
      trigger: string;
      started_at: string | null;
      attempt: number;
    };
    job: {
      id: number;
      target: string;
      mode: 'container' | 'local' | 'ssh' | null;
    };
    user: {
      id: number;
      email: string;
    };
  }

  /** Ids and mode of this run, from the environment. */
  interface Info {
    executionId: string | null;
    jobId: string | null;
    eventId: string | null;
    mode: string | null;
  }

  interface EmailOptions {
    html?: string;
    credentialId?: number;
    cc?: string | string[];
    bcc?: string | string[];
    replyTo?: string;
    /** Anything else is passed to the tool action as is. */
    [param: string]: unknown;
  }

  interface EmailMessage extends EmailOptions {
    to: string | string[];
    subject: string;
    body: string;
  }

  interface SlackOptions {
    channel?: string;
    credentialId?: number;
    blocks?: JsonValue[];
    username?: string;
    [param: string]: unknown;
  }

  interface SlackMessage extends SlackOptions {
    text: string;
  }

  interface DiscordOptions {
    credentialId?: number;
    username?: string;
    embeds?: JsonValue[];
    [param: string]: unknown;
  }

  interface DiscordMessage extends DiscordOptions {
    content: string;
  }

  const VERSION: string;

  /** The execution's input: the JSON the run was started with ({} when it was given none). */
  function input<T = JsonValue>(): Promise<T>;
  /** Alias of `input`. */
  function getInput<T = JsonValue>(): Promise<T>;
  /** Set this job's output (any JSON-serialisable value). */
  function output(data: unknown): Promise<void>;
  /** Alias of `output`. */
  function setOutput(data: unknown): Promise<void>;

  /** A variable's value, or `defaultValue` (null) when it does not exist. */
  function getVariable<T = JsonValue>(key: string): Promise<T | null>;
  function getVariable<T = JsonValue, D = T>(key: string, defaultValue: D): Promise<T | D>;
  /** Create or replace a variable (a secret variable stays secret). */
  function setVariable(key: string, value: unknown): Promise<void>;
  /** Delete a variable: true if it existed, false if not. */
  function deleteVariable(key: string): Promise<boolean>;
  /** Whether the variable exists (even with a null value). */
  function variableExists(key: string): Promise<boolean>;
  /** Atomically add `by` (default 1) to a numeric variable (missing counts as 0): the new value. */
  function incrementVariable(key: string, by?: number): Promise<number>;
  /** Atomically append to a list variable (missing starts empty): the new length. */
  function appendVariable(key: string, value: unknown): Promise<number>;

  /** Set the condition that drives this event's on_condition actions. */
  function setCondition(value: boolean): Promise<void>;
  /** The condition set by this job so far (null until set). */
  function getCondition(): Promise<boolean | null>;

  /** The run's context. */
  function event(): Promise<Context>;
  /** Alias of `event`. */
  function getEvent(): Promise<Context>;
  /** Alias of `event`. */
  function context(): Promise<Context>;
  /** Ids and mode of this run, from the environment (no API call). */
  function info(): Info;

  /** Run a tool action with the owner's credentials; resolves to the server's answer. */
  function executeToolAction<T = JsonValue>(
    tool: string,
    action: string,
    params?: Record<string, unknown>,
  ): Promise<T>;
  /** Tool 'email', action 'send'. */
  function sendEmail<T = JsonValue>(
    to: string | string[],
    subject: string,
    body: string,
    options?: EmailOptions,
  ): Promise<T>;
  function sendEmail<T = JsonValue>(message: EmailMessage): Promise<T>;
  /** Tool 'slack', action 'send_message'. */
  function sendSlackMessage<T = JsonValue>(text: string, options?: SlackOptions): Promise<T>;
  function sendSlackMessage<T = JsonValue>(message: SlackMessage): Promise<T>;
  /** Tool 'discord', action 'send_message'. */
  function sendDiscordMessage<T = JsonValue>(content: string, options?: DiscordOptions): Promise<T>;
  function sendDiscordMessage<T = JsonValue>(message: DiscordMessage): Promise<T>;
}

import CroniumSdk = cronium;

declare global {
  /** The Cronium SDK, pre-loaded in every Node.js run. */
  // eslint-disable-next-line no-var
  var cronium: typeof CroniumSdk;
}

export = cronium;
