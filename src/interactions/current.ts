// The interaction this browser is in, checked against the uid in the URL
// (and, when given, against the prompt the route serves). Every interaction
// route starts here. Its pages are in the language the application asked
// for (ui_locales), when it asked.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { UnexpectedPrompt } from './errors.ts';
import { useUiLocales } from '../http/i18n.ts';

export type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

export async function currentInteraction(provider: Provider, ctx: Context, prompt?: 'login' | 'consent'): Promise<Details> {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  useUiLocales(details.params.ui_locales);
  // named in the request's log line when the request fails (src/logging/failure.ts)
  if (typeof details.params.client_id === 'string') ctx.state.clientId = details.params.client_id;
  if (details.uid !== ctx.params.uid) throw new UnexpectedPrompt('another sign-in is in progress');
  if (prompt && details.prompt.name !== prompt) throw new UnexpectedPrompt(details.prompt.name);
  return details;
}
